"""Gmail push end to end: users.watch from the worker, Pub/Sub pushes into the real server.

The Gmail emulator's push channel stands for Cloud Pub/Sub: it POSTs the push envelope to the
endpoint subscribed to the topic, at most once a second per user, and loses notifications when
told to. Accounts are connected through the real OAuth flow; the worker is the production job
loop with the push registrar as its after-sync hook.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from app import clock
from app.models import Account, PushRegistration, SyncState
from app.server.push import push_routes
from app.services.push_gmail import GmailPush, make_gmail_accounts_due
from resolvers.ids import encode_id
from tests.connect.conftest import ConnectApp, ServedGoogle
from tests.connect.flows import connect_gmail_account
from tests.factories import make_owner
from tests.push.conftest import (
    GMAIL_TOPIC,
    HOUR,
    PUSH_TOKEN,
    PushServer,
    PushServerFactory,
    eventually,
    is_due,
    mail,
    make_due_and_wait,
    polled_hourly,
    running_worker,
    subjects,
    synced,
)
from tests.subscriptions.conftest import gql_subscription

MESSAGE_EVENTS = """subscription($accountIds: [ID!]) {
  messageEvents(accountIds: $accountIds) { kind accountId messageId } }"""


def envelope(email: str, history_id: int | str) -> dict[str, Any]:
    data = json.dumps({"emailAddress": email, "historyId": history_id}).encode()
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": "1", "attributes": {}},
        "subscription": "projects/inbox-api-tests/subscriptions/gmail-push",
    }


async def connected(connect_app: ConnectApp, google: ServedGoogle) -> tuple[Account, str]:
    """A Gmail account through the OAuth flow, polled hourly: only a push makes it due soon."""
    made = await make_owner()
    return await polled_hourly(
        await connect_gmail_account(connect_app, google, made.token)
    ), made.token


@asynccontextmanager
async def gmail_pushing(
    push_server: PushServerFactory, google: ServedGoogle, account: Account
) -> AsyncIterator[PushServer]:
    """A server with Pub/Sub pushing to it, and the worker, once the account synced."""
    async with push_server(tls=False) as server, running_worker(server, account):
        google.emulator.push.subscribe(
            GMAIL_TOPIC, f"{server.base_url}/push/gmail?verification={PUSH_TOKEN}"
        )
        await eventually(lambda: synced(account))
        yield server


async def test_a_push_for_new_mail_makes_the_account_sync_and_a_subscriber_sees_the_mail(
    push_server: PushServerFactory, connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, token = await connected(connect_app, google)
    mailbox = google.emulator.mailbox(account.address)
    async with gmail_pushing(push_server, google, account) as server:
        watch = mailbox.active_watch
        assert watch is not None
        assert watch.topic_name == GMAIL_TOPIC
        registration = await PushRegistration.get(account_id=account.id)
        assert registration.expires_at is not None
        assert registration.renew_after < registration.expires_at  # renewed before it lapses
        polled_at = (await SyncState.get(account_id=account.id)).next_run_at
        assert polled_at is not None
        assert polled_at > clock.now() + timedelta(minutes=30)

        account_id = encode_id("Account", account.id)
        async with gql_subscription(
            server.live, token, MESSAGE_EVENTS, accountIds=[account_id]
        ) as next_event:
            sent = google.emulator.push.counts["sent"]
            mailbox.deliver(mail("Pushed hello", account.address))

            async def arrived() -> bool:
                return "Pushed hello" in await subjects(server, token, account)

            await eventually(arrived)  # the hourly poll is far away: the push brought it
            event = await next_event()

        assert event["kind"] == "MESSAGE_ADDED"
        assert event["accountId"] == account_id
        assert google.emulator.push.counts["sent"] > sent


async def test_a_lost_push_is_caught_by_the_fallback_poll(
    push_server: PushServerFactory, connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, token = await connected(connect_app, google)
    mailbox = google.emulator.mailbox(account.address)
    async with gmail_pushing(push_server, google, account) as server:
        dropped = google.emulator.push.counts["dropped"]
        google.emulator.push.drop_next(1)
        mailbox.deliver(mail("Lost push", account.address))
        await eventually(lambda: _true(google.emulator.push.counts["dropped"] > dropped))
        assert not await is_due(account)
        assert "Lost push" not in await subjects(server, token, account)

        clock.travel(timedelta(seconds=HOUR + 1))  # the poll interval passes

        async def arrived() -> bool:
            return "Lost push" in await subjects(server, token, account)

        await eventually(arrived)


async def test_the_watch_is_renewed_a_day_later_before_it_expires(
    push_server: PushServerFactory, connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, _ = await connected(connect_app, google)
    mailbox = google.emulator.mailbox(account.address)
    async with gmail_pushing(push_server, google, account):
        first = await PushRegistration.get(account_id=account.id)
        mailbox.stop()  # so a new watch shows

        clock.travel(timedelta(hours=12))
        await make_due_and_wait(account)
        assert mailbox.active_watch is None  # not due yet: no call to Gmail

        clock.travel(timedelta(hours=13))
        await make_due_and_wait(account)

        assert mailbox.active_watch is not None
        renewed = await PushRegistration.get(account_id=account.id)
        assert renewed.renew_after > first.renew_after + timedelta(hours=24)
        assert renewed.last_error_code is None


async def test_without_a_topic_the_watch_is_stopped_and_pushes_refused(
    push_server: PushServerFactory, connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, _ = await connected(connect_app, google)
    mailbox = google.emulator.mailbox(account.address)
    async with gmail_pushing(push_server, google, account) as server:
        assert mailbox.active_watch is not None

    off = {"gmail_push_topic": None, "gmail_push_token": None}
    async with push_server(tls=False, **off) as server, running_worker(server, account):
        await make_due_and_wait(account)
        assert mailbox.active_watch is None
        assert not await PushRegistration.exists(account_id=account.id)

        async with server.client() as http:
            body = envelope(account.address, 10**9)
            refused = await http.post(f"/push/gmail?verification={PUSH_TOKEN}", json=body)
        assert refused.status_code == 403


async def test_pushes_without_the_token_are_refused_and_change_nothing(
    push_server: PushServerFactory, connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, _ = await connected(connect_app, google)
    await SyncState.update_or_create(
        {"cursor": "100", "next_run_at": clock.now() + timedelta(hours=1)}, account_id=account.id
    )
    before = (await SyncState.get(account_id=account.id)).next_run_at
    async with push_server(tls=False) as server, server.client() as http:
        body = envelope(account.address, 999)
        for query in ("", "?verification=wrong", f"?verification={PUSH_TOKEN}x"):
            refused = await http.post(f"/push/gmail{query}", json=body)
            assert refused.status_code == 403
            assert refused.json()["errors"][0]["extensions"]["code"] == "PUSH_FORBIDDEN"
            assert account.address not in refused.text

        for bad in (
            b"not json",
            b"[]",
            b'{"message": {"data": "%%%"}}',
            _raw(envelope("", 5)),
            _raw(envelope(account.address, "abc")),
            _raw({"message": {}}),
        ):
            answer = await http.post(f"/push/gmail?verification={PUSH_TOKEN}", content=bad)
            assert answer.status_code == 400
            assert answer.json()["errors"][0]["extensions"]["code"] == "MALFORMED_PUSH"
        assert (await SyncState.get(account_id=account.id)).next_run_at == before

        accepted = await http.post(f"/push/gmail?verification={PUSH_TOKEN}", json=body)
        assert accepted.status_code == 204
        await eventually(lambda: is_due(account))


async def test_a_push_older_than_the_synced_history_makes_nothing_due(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    account, _ = await connected(connect_app, google)
    later = clock.now() + timedelta(hours=1)
    await SyncState.update_or_create({"cursor": "500", "next_run_at": later}, account_id=account.id)

    assert await make_gmail_accounts_due(GmailPush(account.address.upper(), 500)) == []
    assert (await SyncState.get(account_id=account.id)).next_run_at == later
    assert await make_gmail_accounts_due(GmailPush(account.address.upper(), 501)) == [account.id]
    assert await is_due(account)


def _raw(value: Any) -> bytes:
    return json.dumps(value).encode()


async def _true(value: bool) -> bool:
    return value


def test_the_access_log_never_shows_the_verification_token() -> None:
    push_routes()  # installs the filter on uvicorn's access logger
    line = '%s - "%s %s HTTP/%s" %d'
    secret_path = f"/push/gmail?verification={PUSH_TOKEN}"
    records = [
        logging.LogRecord("uvicorn.access", logging.INFO, "h", 1, line, args, None)
        for args in (
            ("127.0.0.1:5", "POST", secret_path, "1.1", 204),
            ("127.0.0.1:5", "GET", "/readyz?x=1", "1.1", 200),
        )
    ]
    for record in records:
        for log_filter in logging.getLogger("uvicorn.access").filters:
            assert isinstance(log_filter, logging.Filter)
            assert log_filter.filter(record)

    assert PUSH_TOKEN not in records[0].getMessage()
    assert '"POST /push/gmail HTTP/1.1" 204' in records[0].getMessage()
    assert "/readyz?x=1" in records[1].getMessage()
