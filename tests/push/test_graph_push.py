"""Graph change notifications end to end, over https: the emulator validates our endpoint when
the worker subscribes, then notifies it of new mail and lifecycle events.

The server serves the Microsoft emulator's test certificate (the emulator delivers only to https
receivers trusting its CA). Accounts are connected through the real MSAL flow.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from app import clock
from app.models import Account, PushRegistration, SyncState
from app.types import Provider
from emulators.graph_subscriptions import Subscription
from emulators.graph_testing import ServedEmulator
from tests.connect.conftest import ConnectApp
from tests.connect.flows import connect_microsoft_account
from tests.factories import make_account, make_owner
from tests.push.conftest import (
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


async def connected(connect_app: ConnectApp, microsoft: ServedEmulator) -> tuple[Account, str]:
    """A Microsoft account through the MSAL flow, polled hourly: a notification makes it due."""
    made = await make_owner()
    account = await connect_microsoft_account(connect_app, microsoft, made.token)
    return await polled_hourly(account), made.token


@asynccontextmanager
async def graph_subscribed(
    push_server: PushServerFactory, account: Account
) -> AsyncIterator[PushServer]:
    """An https server and the worker, once the account synced and subscribed."""
    async with push_server(tls=True) as server, running_worker(server, account):
        await eventually(lambda: synced(account))
        await eventually(lambda: _registered(account))
        yield server


def subscription_of(microsoft: ServedEmulator, account: Account) -> Subscription:
    user_id = microsoft.emulator.user_id(account.address)
    (subscription,) = microsoft.emulator.subscriptions.subscriptions_of(user_id)
    return subscription


async def test_the_worker_subscribes_and_a_notification_brings_new_mail_in(
    push_server: PushServerFactory, connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    account, token = await connected(connect_app, microsoft)
    async with graph_subscribed(push_server, account) as server:
        subscription = subscription_of(microsoft, account)
        registration = await PushRegistration.get(account_id=account.id)
        assert registration.external_id == subscription.id
        assert subscription.resource == "me/messages"
        assert subscription.change_types == {"created", "updated", "deleted"}
        assert subscription.notification_url == f"{server.base_url}/push/graph"
        assert subscription.lifecycle_url == f"{server.base_url}/push/graph/lifecycle"
        # The clientState is a secret shared with Graph: only its digest is stored.
        assert subscription.client_state is not None
        assert len(subscription.client_state) >= 40
        digest = hashlib.sha256(subscription.client_state.encode()).hexdigest()
        assert registration.client_state_digest == digest
        assert registration.expires_at is not None
        assert registration.renew_after < registration.expires_at

        microsoft.emulator.deliver(account.address, mail("Notified hello", account.address))

        async def arrived() -> bool:
            return "Notified hello" in await subjects(server, token, account)

        await eventually(arrived)
        statuses = {d.status for d in microsoft.emulator.notifications() if "value" in d.body}
        assert statuses == {202}


async def test_a_refused_subscription_is_retried_later_and_the_sync_goes_on(
    push_server: PushServerFactory, connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    account, _ = await connected(connect_app, microsoft)
    # Graph subscribes only https endpoints: an http public URL is refused.
    async with push_server(tls=False) as server, running_worker(server, account):
        await eventually(lambda: synced(account))
        await eventually(lambda: PushRegistration.exists(account_id=account.id))

    registration = await PushRegistration.get(account_id=account.id)
    assert registration.external_id is None
    assert registration.last_error_code == "HTTP_400"
    assert registration.renew_after > clock.now() + timedelta(minutes=14)
    assert (
        microsoft.emulator.subscriptions.subscriptions_of(
            microsoft.emulator.user_id(account.address)
        )
        == []
    )
    assert (await SyncState.get(account_id=account.id)).last_error_code is None


async def test_validation_requests_are_echoed_and_bad_bodies_refused(
    push_server: PushServerFactory,
) -> None:
    async with push_server(tls=True) as server, server.client() as http:
        for path in ("/push/graph", "/push/graph/lifecycle"):
            token = "Validation: Testing client application reachability 0123 <&>"
            answer = await http.post(path, params={"validationToken": token})
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert answer.text == token

            too_long = await http.post(path, params={"validationToken": "x" * 1025})
            assert too_long.status_code == 400
            assert too_long.json()["errors"][0]["extensions"]["code"] == "MALFORMED_PUSH"

        for bad in (b"nope", b"{}", b'{"value": []}', b'{"value": [1]}', b'{"value": [{}]}'):
            refused = await http.post("/push/graph", content=bad)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["extensions"]["code"] == "MALFORMED_PUSH"


async def test_a_wrong_client_state_is_ignored_and_counted(
    push_server: PushServerFactory,
) -> None:
    made = await make_owner()
    account = await make_account(made.owner, provider=Provider.GRAPH, address="cs@contoso.test")
    later = clock.now() + timedelta(hours=1)
    await SyncState.create(account_id=account.id, next_run_at=later)
    secret = "the-client-state-given-to-graph"
    await PushRegistration.create(
        account_id=account.id,
        provider=Provider.GRAPH,
        external_id="sub-1",
        client_state_digest=hashlib.sha256(secret.encode()).hexdigest(),
        renew_after=later,
    )

    def notification(subscription_id: str, client_state: str | None) -> dict[str, object]:
        item = {"subscriptionId": subscription_id, "changeType": "created", "resource": "x"}
        return {"value": [{**item, "clientState": client_state}]}

    async with push_server(tls=True) as server, server.client() as http:
        two_in_one = {"value": notification("sub-1", "a")["value"] * 2}
        for wrong in (notification("sub-1", "guess"), notification("sub-1", None), two_in_one):
            assert (await http.post("/push/graph", json=wrong)).status_code == 202

        async def counted() -> bool:
            registration = await PushRegistration.get(account_id=account.id)
            return registration.rejected_notifications == 4

        await eventually(counted)
        unknown = notification("sub-2", secret)
        assert (await http.post("/push/graph", json=unknown)).status_code == 202
        assert (await SyncState.get(account_id=account.id)).next_run_at == later

        genuine = await http.post("/push/graph", json=notification("sub-1", secret))
        assert genuine.status_code == 202
        await eventually(lambda: is_due(account))


async def test_lifecycle_events_recreate_renew_and_catch_up(
    push_server: PushServerFactory, connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    account, _ = await connected(connect_app, microsoft)
    async with graph_subscribed(push_server, account):
        first = subscription_of(microsoft, account)

        microsoft.emulator.send_lifecycle_event(first.id, "subscriptionRemoved")

        async def recreated() -> bool:
            registration = await PushRegistration.get(account_id=account.id)
            return registration.external_id not in (None, first.id)

        await eventually(recreated)
        second = subscription_of(microsoft, account)
        assert second.id != first.id
        assert second.client_state != first.client_state

        clock.travel(timedelta(hours=1))  # so a renewal shows in the expiry
        microsoft.emulator.send_lifecycle_event(second.id, "reauthorizationRequired")

        async def renewed() -> bool:
            return subscription_of(microsoft, account).expires_at >= second.expires_at + timedelta(
                minutes=50
            )

        await eventually(renewed)
        assert subscription_of(microsoft, account).id == second.id

        before = (await SyncState.get(account_id=account.id)).last_success_at
        microsoft.emulator.send_lifecycle_event(second.id, "missed")

        async def caught_up() -> bool:
            state = await SyncState.get(account_id=account.id)
            return state.last_success_at != before and state.lease_owner is None

        await eventually(caught_up)
        registration = await PushRegistration.get(account_id=account.id)
        assert registration.external_id == second.id
        assert registration.rejected_notifications == 0


async def test_the_subscription_is_renewed_before_it_expires(
    push_server: PushServerFactory, connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    account, _ = await connected(connect_app, microsoft)
    async with graph_subscribed(push_server, account):
        first = subscription_of(microsoft, account)

        clock.travel(timedelta(hours=24))
        await make_due_and_wait(account)
        assert subscription_of(microsoft, account).expires_at == first.expires_at  # not yet

        clock.travel(timedelta(hours=25))  # less than a day left
        await make_due_and_wait(account)

        renewed = subscription_of(microsoft, account)
        assert renewed.id == first.id
        assert renewed.expires_at >= first.expires_at + timedelta(hours=48)
        registration = await PushRegistration.get(account_id=account.id)
        assert registration.expires_at == renewed.expires_at
        assert registration.last_error_code is None


async def _registered(account: Account) -> bool:
    registration = await PushRegistration.get_or_none(account_id=account.id)
    return registration is not None and registration.external_id is not None
