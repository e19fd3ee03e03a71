"""IMAP write actions end to end: GraphQL mutations on a real server, the real Dovecot, the cache
and a subscriber.

Each test connects a Dovecot mailbox with ``connectImap`` (password and SMTP settings into the
vault and the account row), syncs it with the production adapter factory, then acts through the
mutations of a live server (uvicorn, its own registered writer: ``sync.sessions`` builds the
adapter from the row and reads the password from the vault). After every action the cache equals
what another IMAP client (the stdlib's ``imaplib``) sees on the server, and a ``messageEvents``
subscriber receives exactly the change-log rows the action wrote.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.events import InProcessBus
from app.models import Account, ChangeLogEntry, Folder, Message
from app.services.message_actions import (
    ActionRequest,
    act_on_messages,
    register_message_writer,
)
from app.settings import Settings
from app.types import Provider
from resolvers.ids import encode_id
from sync.actions import AdapterWriter
from sync.engine import OutcomeKind, sync_account
from sync.providers.actions import ActionKind
from sync.providers.imap_actions import ImapActionAdapter
from sync.sessions import AdapterFactory
from tests.factories import make_owner, make_token
from tests.imap.conftest import Mailbox, server_truth
from tests.subscriptions.conftest import (  # noqa: F401 (fixtures used by name)
    LiveServer,
    LiveServerFactory,
    gql_subscription,
    live_server,
)
from tests.support.dovecot import Dovecot
from tests.support.smtp_sink import SmtpSink
from tests.test_canary import ring  # noqa: F401 (a fixture used by name)
from vault import Secret

FOLDERS = ("INBOX", "Archive", "Trash", "Sent", "Projects")
_messages = itertools.count(1)

CONNECT = """
mutation($input: ConnectImapInput!) {
  connectImap(input: $input) {
    __typename
    ... on ImapConnected { account { id } }
    ... on ConnectImapError { code message field }
  }
}
"""
ACTION_FIELDS = """
    __typename
    ... on MessagesUpdated { ids messages { id unread starred labels { name } } }
    ... on MutationError { code message field }
"""
MUTATIONS = {
    "markRead": "mutation($ids: [ID!]!, $read: Boolean!) { markRead(ids: $ids, read: $read) {%s} }",
    "star": "mutation($ids: [ID!]!, $on: Boolean!) { star(ids: $ids, starred: $on) {%s} }",
    "moveMessages": "mutation($ids: [ID!]!, $folder: ID!) "
    "{ moveMessages(ids: $ids, folderId: $folder) {%s} }",
    "archive": "mutation($ids: [ID!]!) { archive(ids: $ids) {%s} }",
    "trash": "mutation($ids: [ID!]!) { trash(ids: $ids) {%s} }",
    "deletePermanently": "mutation($ids: [ID!]!) { deletePermanently(ids: $ids) {%s} }",
    "addLabels": "mutation($ids: [ID!]!, $labels: [ID!]!) "
    "{ addLabels(ids: $ids, labelIds: $labels) {%s} }",
}
MESSAGE_EVENTS = """
subscription($accountIds: [ID!]) {
  messageEvents(accountIds: $accountIds) { kind accountId messageId }
}
"""


def mail(subject: str, **headers: str) -> bytes:
    """A small message with a unique Message-ID."""
    lines = [
        "From: Friend <friend@example.org>",
        "To: someone@example.test",
        f"Subject: {subject}",
        f"Message-ID: <m{next(_messages)}.{subject.replace(' ', '-')}@example.org>",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\nhello " + subject + "\r\n").encode()


@dataclass
class Connected:
    """An IMAP account connected through the API of a live server, with an SMTP sink."""

    server: LiveServer
    mailbox: Mailbox
    account: Account
    token: str
    sink: SmtpSink
    http: httpx.AsyncClient

    @property
    def settings(self) -> Settings:
        return self.server.services.settings

    async def call(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(
            self.server.http_url,
            json={"query": query, "variables": variables},
            headers={"authorization": f"Bearer {self.token}"},
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body

    async def act(self, name: str, **variables: Any) -> dict[str, Any]:
        body = await self.call(MUTATIONS[name] % ACTION_FIELDS, **variables)
        answer: dict[str, Any] = body["data"][name]
        return answer

    async def sync(self) -> None:
        adapters = AdapterFactory(self.settings, self.server.services.events)
        try:
            outcome = await sync_account(
                self.account.id, adapters.open_adapter, self.server.services.events
            )
        finally:
            await adapters.aclose()
        assert outcome.kind is OutcomeKind.SYNCED, outcome

    async def message(self, subject: str) -> Message:
        return await Message.get(account_id=self.account.id, subject=subject)

    async def folder(self, provider_id: str) -> str:
        folder = await Folder.get(account_id=self.account.id, provider_id=provider_id)
        return encode_id("Folder", folder.id)


@pytest.fixture
def smtp_security() -> str:
    """How the sink is secured ("tls", "starttls" or "plain"); tests parametrize it."""
    return "tls"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Settings of the live server beyond the test CA; tests parametrize it."""
    return {}


@pytest.fixture
def smtp_password_stored() -> bool:
    """Whether ``connectImap`` gets an SMTP password of its own (else the IMAP one serves)."""
    return True


@pytest.fixture
async def connected(
    live_server: LiveServerFactory,  # noqa: F811 (the imported fixture)
    dovecot: Dovecot,
    mailbox: Mailbox,
    ring: Any,  # noqa: F811 (the imported fixture)
    smtp_security: str,
    server_settings: dict[str, Any],
    smtp_password_stored: bool,
) -> AsyncIterator[Connected]:
    async with AsyncExitStack() as stack:
        sink = await SmtpSink.start(dovecot.tls, security=smtp_security)
        stack.push_async_callback(sink.stop)
        server = await stack.enter_async_context(
            live_server(
                imap_ca_file=dovecot.tls.ca_path,
                imap_connect_timeout_seconds=10,
                **server_settings,
            )
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        made = await make_owner()
        token = await make_token(made.owner)
        smtp_user = f"smtp-{mailbox.user}"
        sink.users[smtp_user] = (
            f"smtp-{mailbox.password}" if smtp_password_stored else mailbox.password
        )
        smtp_password = {"smtpPassword": sink.users[smtp_user]} if smtp_password_stored else {}
        with dovecot.client(mailbox.user) as other:
            other.create("Projects")
        answer = await http.post(
            server.http_url,
            json={
                "query": CONNECT,
                "variables": {
                    "input": {
                        "imap": {
                            "host": dovecot.host,
                            "port": dovecot.imaps_port,
                            "security": "TLS",
                            "username": mailbox.user,
                        },
                        "password": mailbox.password,
                        "smtp": sink.settings(smtp_user),
                        **smtp_password,
                    }
                },
            },
            headers={"authorization": f"Bearer {token}"},
        )
        result = answer.json()["data"]["connectImap"]
        assert result["__typename"] == "ImapConnected", result
        account = await Account.get(owner_id=made.owner.id, provider=Provider.IMAP)
        yield Connected(server, mailbox, account, token, sink, http)


async def cache_state(account: Account) -> dict[str, dict[str, Any]]:
    """The cached messages in ``server_truth``'s shape."""
    rows = await Message.filter(account_id=account.id).values(
        "provider_id", "label_ids", "unread", "starred", "message_id_header"
    )
    return {
        row["provider_id"]: {
            "label_ids": list(row["label_ids"]),
            "unread": row["unread"],
            "starred": row["starred"],
            "message_id_header": row["message_id_header"],
        }
        for row in rows
    }


async def assert_cache_is_the_server(
    connected: Connected, folders: Iterable[str] = FOLDERS
) -> None:
    assert await cache_state(connected.account) == server_truth(connected.mailbox, folders)


async def change_kinds_since(account: Account, last: int) -> list[str]:
    rows = await ChangeLogEntry.filter(account_id=account.id, id__gt=last).order_by("id")
    return [row.kind.value.upper() for row in rows]


async def last_change(account: Account) -> int:
    row = await ChangeLogEntry.filter(account_id=account.id).order_by("-id").first()
    return 0 if row is None else int(row.id)


async def events_for(
    next_event: Callable[[], Awaitable[dict[str, Any]]], account: Account, last: int
) -> list[str]:
    """Wait for one event per change-log row written since ``last``; their kinds."""
    kinds = []
    for _ in await change_kinds_since(account, last):
        event = await next_event()
        assert event["accountId"] == encode_id("Account", account.id)
        kinds.append(event["kind"])
    return kinds


async def test_every_action_reaches_dovecot_the_cache_and_a_subscriber(
    connected: Connected,
) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        for subject in ("first", "second", "third"):
            other.append("INBOX", mail(subject))
    await connected.sync()
    await assert_cache_is_the_server(connected)
    account_id = encode_id("Account", connected.account.id)
    first = encode_id("Message", (await connected.message("first")).id)

    async with gql_subscription(
        connected.server, connected.token, MESSAGE_EVENTS, accountIds=[account_id]
    ) as next_event:

        async def step(name: str, expected: list[str], **variables: Any) -> dict[str, Any]:
            last = await last_change(connected.account)
            answer = await connected.act(name, **variables)
            assert answer["__typename"] == "MessagesUpdated", answer
            await assert_cache_is_the_server(connected)
            assert await change_kinds_since(connected.account, last) == expected
            assert await events_for(next_event, connected.account, last) == expected
            return answer

        read = await step("markRead", ["MESSAGE_CHANGED"], ids=[first], read=True)
        assert read["messages"] == [
            {"id": first, "unread": False, "starred": False, "labels": [{"name": "INBOX"}]}
        ]
        await step("markRead", ["MESSAGE_CHANGED"], ids=[first], read=False)
        starred = await step("star", ["MESSAGE_CHANGED"], ids=[first], on=True)
        assert starred["messages"][0]["starred"] is True
        await step("star", ["MESSAGE_CHANGED"], ids=[first], on=False)

        # Moves: the server's COPYUID names the new UID; the cached row (and so the API id)
        # follows the message (apply hands it to the new provider id: same Message-ID).
        projects = await connected.folder("Projects")
        moved = await step("moveMessages", ["MESSAGE_CHANGED"], ids=[first], folder=projects)
        assert [(m["id"], m["labels"]) for m in moved["messages"]] == [
            (first, [{"name": "Projects"}])
        ]
        with mailbox.server.client(mailbox.user) as other:
            assert len(other.uids("Projects")) == 1
            assert len(other.uids("INBOX")) == 2
        archived = await step("archive", ["MESSAGE_CHANGED"], ids=[first])
        assert archived["messages"][0]["labels"] == [{"name": "Archive"}]
        trashed = await step("trash", ["MESSAGE_CHANGED"], ids=[first])
        assert trashed["messages"][0]["labels"] == [{"name": "Trash"}]
        gone = await step("deletePermanently", ["MESSAGE_DELETED"], ids=[first])
        assert (gone["ids"], gone["messages"]) == ([first], [])
        with mailbox.server.client(mailbox.user) as other:
            assert other.uids("Trash") == []

    assert not await Message.filter(account_id=connected.account.id, subject="first").exists()
    assert connected.sink.received == []  # acting sends nothing


async def test_several_messages_at_once_and_labels_are_refused(connected: Connected) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        for subject in ("one", "two"):
            other.append("INBOX", mail(subject))
    await connected.sync()
    ids = [encode_id("Message", (await connected.message(s)).id) for s in ("one", "two")]

    answer = await connected.act("star", ids=ids, on=True)
    assert answer["ids"] == ids
    assert [m["starred"] for m in answer["messages"]] == [True, True]
    await assert_cache_is_the_server(connected)

    last = await last_change(connected.account)
    inbox = await connected.folder("INBOX")
    refused = await connected.act("addLabels", ids=ids, labels=[inbox])
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "MutationError",
        "BAD_USER_INPUT",
        "labelIds",
    )
    assert await last_change(connected.account) == last
    await assert_cache_is_the_server(connected)


async def test_a_refused_move_is_typed_and_leaves_cache_and_server(connected: Connected) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        other.append("INBOX", mail("stay"))
    await connected.sync()
    message = encode_id("Message", (await connected.message("stay")).id)
    projects = await connected.folder("Projects")
    with mailbox.server.client(mailbox.user) as other:
        other.delete("Projects")  # gone at the server; the cache still lists it
    before = await cache_state(connected.account)
    last = await last_change(connected.account)

    failed = await connected.act("moveMessages", ids=[message], folder=projects)

    assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
    assert "FOLDER_GONE" in failed["message"]
    assert await cache_state(connected.account) == before
    await assert_cache_is_the_server(connected, ["INBOX"])
    assert await last_change(connected.account) == last


async def test_permanent_deletion_expunges_exactly_that_message(connected: Connected) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        other.append("INBOX", mail("doomed"))
        other.append("INBOX", mail("kept"), ["\\Deleted"])  # flagged by another client
    await connected.sync()
    doomed = encode_id("Message", (await connected.message("doomed")).id)

    answer = await connected.act("deletePermanently", ids=[doomed])

    assert (answer["__typename"], answer["messages"]) == ("MessagesUpdated", [])
    with mailbox.server.client(mailbox.user) as other:
        remaining = other.fetch_all("INBOX", "HEADER")
    assert [b"kept" in raw for _, raw in remaining.values()] == [True]
    await assert_cache_is_the_server(connected)


async def test_without_move_a_copy_and_uid_expunge_move_the_message(
    connected: Connected,
) -> None:
    """A server without MOVE (RFC 6851): UID COPY, \\Deleted and UID EXPUNGE of that UID."""
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        other.append("INBOX", mail("old server"))
        other.append("INBOX", mail("bystander"), ["\\Deleted"])
    await connected.sync()
    message = await connected.message("old server")

    async def without_move(account: Account) -> ImapActionAdapter:
        return ImapActionAdapter(
            mailbox.endpoint(),
            Secret(mailbox.password),
            ssl_context=mailbox.server.ssl_context(),
            disabled_extensions={"MOVE"},
        )

    previous = register_message_writer(AdapterWriter(without_move, InProcessBus()))
    try:
        archive = await Folder.get(account_id=connected.account.id, provider_id="Archive")
        request = ActionRequest(ActionKind.MOVE, [message.id], folder_id=archive.id)
        await act_on_messages([connected.account.id], request)
    finally:
        register_message_writer(previous)
    await assert_cache_is_the_server(connected)
    with mailbox.server.client(mailbox.user) as other:
        assert len(other.uids("INBOX")) == 1  # the bystander, still flagged \Deleted
        assert len(other.uids("Archive")) == 1


async def test_a_message_gone_at_the_server_is_not_found_and_the_cache_waits_for_sync(
    connected: Connected,
) -> None:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        uid = other.append("INBOX", mail("vanishing"))
    await connected.sync()
    message = await connected.message("vanishing")
    with mailbox.server.client(mailbox.user) as other:
        other.expunge("INBOX", uid)
    last = await last_change(connected.account)

    failed = await connected.act("star", ids=[encode_id("Message", message.id)], on=True)

    assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
    assert "NOT_FOUND" in failed["message"]
    assert (await Message.get(id=message.id)).starred is False
    assert await last_change(connected.account) == last
    await connected.sync()  # sync then confirms what the server has
    assert not await Message.filter(id=message.id).exists()
