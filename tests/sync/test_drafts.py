"""Drafts end to end: GraphQL over real HTTP to a live server, the Gmail and Microsoft emulators
over HTTP(S), a ``gql`` WebSocket subscriber.

For each of createDraft, updateDraft, sendDraft and deleteDraft: the emulated mailbox changed,
the cache says the same (Gmail DRAFT label / Graph Drafts folder, ``draft`` set), the
subscriber saw the change, and a reply draft keeps In-Reply-To/References through an update
and the send. Sending a draft is idempotent per key; Graph's sent copy comes with the sync the
send requested.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes
from typing import Any

import httpx
import pytest

from app import clock
from app.events import InProcessBus
from app.models import Account, Message, SyncState
from app.services.message_actions import register_message_writer
from app.services.send import reset_rate_limits
from app.settings import Settings
from app.types import Action, Provider
from resolvers.ids import decode_typed, encode_id
from sync.actions import AdapterWriter
from sync.engine import OutcomeKind, sync_account
from tests.factories import make_account, make_owner, make_token
from tests.subscriptions.conftest import LiveServer, LiveServerFactory, gql_subscription
from tests.subscriptions.conftest import live_server as live_server
from tests.sync.emulated_graph import GraphFactory
from tests.sync.harness import EmulatedGmail

DRAFT_FIELDS = "__typename ... on DraftSaved { id draft { subject draft } } " + (
    "... on MutationError { code message field }"
)
CREATE = f"""mutation($account: ID!, $input: DraftInput!) {{
  createDraft(accountId: $account, input: $input) {{ {DRAFT_FIELDS} }} }}"""
UPDATE = f"""mutation($id: ID!, $input: DraftInput!) {{
  updateDraft(id: $id, input: $input) {{ {DRAFT_FIELDS} }} }}"""
DELETE = """mutation($id: ID!) { deleteDraft(id: $id) {
  __typename ... on DraftDeleted { id } ... on MutationError { code field } } }"""
SEND_DRAFT = """mutation($id: ID!, $key: String!) { sendDraft(id: $id, idempotencyKey: $key) {
  __typename
  ... on MessageSent { messageIdHeader providerMessageId duplicate syncRequested }
  ... on MutationError { code message field } } }"""
EVENTS = "subscription { messageEvents { kind messageId } }"
SCOPES = {Action.MESSAGES_DRAFTS, Action.MESSAGES_SEND, Action.MESSAGES_METADATA}

Call = Callable[..., Awaitable[dict[str, Any]]]
NextEvent = Callable[[], Awaitable[dict[str, Any]]]


@pytest.fixture
async def server(live_server: LiveServerFactory) -> AsyncIterator[LiveServer]:
    async with live_server() as served:
        yield served


@pytest.fixture
def writer_for(server: LiveServer) -> Iterator[Callable[[Any], None]]:
    """Install an ``AdapterWriter`` over the test's emulator adapters, publishing on the live
    server's bus (so its subscribers see the changes)."""
    previous = register_message_writer(None)
    reset_rate_limits()

    def install(factory: Any) -> None:
        register_message_writer(AdapterWriter(factory, server.services.events))

    yield install
    register_message_writer(previous)
    reset_rate_limits()


@pytest.fixture
async def call(server: LiveServer) -> AsyncIterator[Call]:
    """``await call(token, query, **variables)``: the mutation's field, over real HTTP."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:

        async def post(token: str, query: str, **variables: Any) -> dict[str, Any]:
            response = await http.post(
                server.http_url,
                json={"query": query, "variables": variables},
                headers={"authorization": f"Bearer {token}"},
            )
            body = response.json()
            assert "errors" not in body, body
            answer: dict[str, Any] = next(iter(body["data"].values()))
            return answer

        yield post


def content(**more: Any) -> dict[str, Any]:
    return {"to": [{"email": "friend@example.com", "name": "A Friend"}], **more}


async def events(next_event: NextEvent, count: int) -> list[tuple[str, str]]:
    return [(e["kind"], e["messageId"]) for e in [await next_event() for _ in range(count)]]


async def cached(message_id: str) -> Message | None:
    return await Message.get_or_none(id=decode_typed(message_id, "Message"))


async def test_gmail_draft_lifecycle(
    db: Settings, gmail: EmulatedGmail, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(gmail.adapter_factory)
    mailbox = gmail.new_user()
    mailbox.deliver(
        f"From: friend@example.com\r\nTo: {mailbox.email}\r\nSubject: Question\r\n"
        "Message-ID: <q1@example.com>\r\nReferences: <q0@example.com>\r\n\r\nwell?".encode(),
        label_ids=["INBOX", "UNREAD"],
    )
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.email)
    assert (await sync_account(account.id, gmail.adapter_factory, InProcessBus())).kind is (
        OutcomeKind.SYNCED
    )
    original = await Message.get(account_id=account.id)
    token = await make_token(made.owner, actions=SCOPES)
    account_id = encode_id("Account", account.id)

    async with gql_subscription(server, token, EVENTS) as next_event:
        reply = content(
            subject="Re: Question", textBody="v1", replyToId=encode_id("Message", original.id)
        )
        saved = await call(token, CREATE, account=account_id, input=reply)
        assert saved["__typename"] == "DraftSaved", saved
        assert saved["draft"] == {"subject": "Re: Question", "draft": True}
        assert await events(next_event, 1) == [("MESSAGE_ADDED", saved["id"])]
        (draft,) = mailbox.list_drafts().items
        headers = message_from_bytes(draft.message.raw)
        assert headers["In-Reply-To"] == "<q1@example.com>"
        assert headers["References"] == "<q0@example.com> <q1@example.com>"
        assert draft.message.thread_id == mailbox.get(original.provider_id).thread_id
        row = await cached(saved["id"])
        assert row is not None
        assert row.draft
        assert "DRAFT" in row.label_ids
        assert row.provider_id == draft.message.id

        # An update replaces the content; Gmail gives it a new message id, the reply is kept.
        updated = await call(
            token, UPDATE, id=saved["id"], input=content(subject="Re: Question!", textBody="v2")
        )
        assert updated["draft"] == {"subject": "Re: Question!", "draft": True}
        assert updated["id"] != saved["id"]
        assert sorted(await events(next_event, 2)) == [
            ("MESSAGE_ADDED", updated["id"]),
            ("MESSAGE_DELETED", saved["id"]),
        ]
        (draft,) = mailbox.list_drafts().items
        headers = message_from_bytes(draft.message.raw)
        assert (headers["Subject"], headers["In-Reply-To"]) == ("Re: Question!", "<q1@example.com>")
        assert headers["References"] == "<q0@example.com> <q1@example.com>"
        assert await cached(saved["id"]) is None

        sent = await call(token, SEND_DRAFT, id=updated["id"], key="send-1")
        assert (sent["__typename"], sent["duplicate"], sent["syncRequested"]) == (
            "MessageSent",
            False,
            False,
        )
        # Gmail may keep the draft's message id for the sent copy, or give it another.
        copy_id = encode_id("Message", (await sent_row(account, sent)).id)
        expected = (
            [("MESSAGE_CHANGED", copy_id)]
            if copy_id == updated["id"]
            else [("MESSAGE_ADDED", copy_id), ("MESSAGE_DELETED", updated["id"])]
        )
        assert sorted(await events(next_event, len(expected))) == expected
        assert mailbox.list_drafts().items == []
        stored = mailbox.get(sent["providerMessageId"])
        assert "SENT" in stored.label_ids
        assert "DRAFT" not in stored.label_ids
        assert message_from_bytes(stored.raw)["In-Reply-To"] == "<q1@example.com>"
        copy = await sent_row(account, sent)
        assert not copy.draft
        assert "SENT" in copy.label_ids
        # A retry with the same key sends nothing (the draft is gone; the key answers).
        again = await call(token, SEND_DRAFT, id=updated["id"], key="send-1")
        assert again == {**sent, "duplicate": True}
        assert len(list(mailbox.list_messages(label_ids=["SENT"]).items)) == 1

        doomed = await call(token, CREATE, account=account_id, input={"subject": "no one yet"})
        assert doomed["draft"] == {"subject": "no one yet", "draft": True}
        assert await events(next_event, 1) == [("MESSAGE_ADDED", doomed["id"])]
        deleted = await call(token, DELETE, id=doomed["id"])
        assert deleted == {"__typename": "DraftDeleted", "id": doomed["id"]}
        assert await events(next_event, 1) == [("MESSAGE_DELETED", doomed["id"])]
        assert mailbox.list_drafts().items == []
        assert await cached(doomed["id"]) is None
    # A later sync (Gmail history) confirms the cache: no draft left, no sent copy twice.
    kept = set(await Message.filter(account_id=account.id).values_list("provider_id", flat=True))
    assert len(kept) == 2
    assert (await sync_account(account.id, gmail.adapter_factory, InProcessBus())).kind is (
        OutcomeKind.SYNCED
    )
    assert not await Message.exists(account_id=account.id, draft=True)
    assert (
        set(await Message.filter(account_id=account.id).values_list("provider_id", flat=True))
        == kept
    )


async def sent_row(account: Account, sent: dict[str, Any]) -> Message:
    return await Message.get(account_id=account.id, provider_id=sent["providerMessageId"])


async def test_graph_draft_lifecycle(
    db: Settings, graph: GraphFactory, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(graph)
    emulator = graph.served.emulator
    mailbox = graph.served.new_mailbox()
    graph.mailboxes[mailbox.address] = mailbox
    emulator.add_message(
        mailbox.address,
        subject="Question",
        text="well?",
        message_id="<g1@example.com>",
        references=["<g0@example.com>"],
    )
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.address, provider=Provider.GRAPH)
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    original = await Message.get(account_id=account.id)
    token = await make_token(made.owner, actions=SCOPES)
    user_id = emulator.user_id(mailbox.address)
    drafts_folder = emulator.store.folder(user_id, "drafts").id
    sent_folder = emulator.store.folder(user_id, "sentitems").id

    def drafts() -> list[Any]:
        return emulator.store.messages(user_id, drafts_folder)

    async with gql_subscription(server, token, EVENTS) as next_event:
        reply = content(
            subject="Re: Question",
            htmlBody="<p>v1</p>",
            replyToId=encode_id("Message", original.id),
        )
        saved = await call(token, CREATE, account=encode_id("Account", account.id), input=reply)
        assert saved["draft"] == {"subject": "Re: Question", "draft": True}, saved
        assert await events(next_event, 1) == [("MESSAGE_ADDED", saved["id"])]
        (draft,) = drafts()
        assert draft.is_draft
        headers = message_from_bytes(draft.mime)
        assert headers["In-Reply-To"] == "<g1@example.com>"
        # Graph's message resource has no References: the cache knows the Message-ID only.
        assert headers["References"] == "<g1@example.com>"
        row = await cached(saved["id"])
        assert row is not None
        assert row.draft
        assert row.label_ids[0] == drafts_folder
        assert row.provider_id == draft.immutable_id

        updated = await call(
            token, UPDATE, id=saved["id"], input=content(subject="Re: Question!", textBody="v2")
        )
        assert updated["draft"] == {"subject": "Re: Question!", "draft": True}
        assert sorted(await events(next_event, 2)) == [
            ("MESSAGE_ADDED", updated["id"]),
            ("MESSAGE_DELETED", saved["id"]),
        ]
        (draft,) = drafts()
        headers = message_from_bytes(draft.mime)
        assert (headers["Subject"], headers["In-Reply-To"]) == ("Re: Question!", "<g1@example.com>")

        state = await SyncState.get(account_id=account.id)
        assert state.next_run_at is not None
        assert state.next_run_at > clock.now()
        sent = await call(token, SEND_DRAFT, id=updated["id"], key="g-send")
        assert (sent["__typename"], sent["providerMessageId"], sent["syncRequested"]) == (
            "MessageSent",
            None,
            True,
        )
        assert await events(next_event, 1) == [("MESSAGE_DELETED", updated["id"])]
        assert drafts() == []
        (copy,) = emulator.store.messages(user_id, sent_folder)
        assert message_from_bytes(copy.mime)["In-Reply-To"] == "<g1@example.com>"
        # Graph answered 202 without the copy: the account was made due at once.
        state = await SyncState.get(account_id=account.id)
        assert state.next_run_at is not None
        assert state.next_run_at <= clock.now()
        assert (await call(token, SEND_DRAFT, id=updated["id"], key="g-send"))["duplicate"]
        assert len(emulator.store.messages(user_id, sent_folder)) == 1
        # The sync the send requested brings the sent copy (Graph's answer had none).
        assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
        synced = await Message.get(account_id=account.id, provider_id=copy.immutable_id)
        assert not synced.draft
        assert await events(next_event, 1) == [("MESSAGE_ADDED", encode_id("Message", synced.id))]

        doomed = await call(
            token, CREATE, account=encode_id("Account", account.id), input={"subject": "later"}
        )
        assert await events(next_event, 1) == [("MESSAGE_ADDED", doomed["id"])]
        assert (await call(token, DELETE, id=doomed["id"]))["__typename"] == "DraftDeleted"
        assert await events(next_event, 1) == [("MESSAGE_DELETED", doomed["id"])]
        assert drafts() == []
        assert await cached(doomed["id"]) is None
    # A later sync confirms what the cache took from Graph's answers: no draft, nothing new.
    kept = set(await Message.filter(account_id=account.id).values_list("provider_id", flat=True))
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    assert not await Message.exists(account_id=account.id, draft=True)
    assert (
        set(await Message.filter(account_id=account.id).values_list("provider_id", flat=True))
        == kept
    )


async def test_drafts_refuse_bad_input_and_other_messages(
    db: Settings, gmail: EmulatedGmail, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(gmail.adapter_factory)
    mailbox = gmail.new_user()
    mailbox.deliver(
        f"From: a@example.com\r\nTo: {mailbox.email}\r\nSubject: s\r\n\r\nhello".encode(),
        label_ids=["INBOX"],
    )
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.email)
    await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    inbox_message = await Message.get(account_id=account.id)
    token = await make_token(made.owner, actions=SCOPES)
    before = gmail.emulator.stats.snapshot()["requests"].get("drafts.create", 0)

    injected = await call(
        token,
        CREATE,
        account=encode_id("Account", account.id),
        input={"subject": "hi\r\nBcc: victim@example.com"},
    )
    assert (injected["code"], injected["field"]) == ("BAD_USER_INPUT", "subject")
    not_a_draft = await call(
        token, UPDATE, id=encode_id("Message", inbox_message.id), input={"subject": "x"}
    )
    assert (not_a_draft["code"], not_a_draft["field"]) == ("BAD_USER_INPUT", "id")
    refused_send = await call(token, SEND_DRAFT, id=encode_id("Message", inbox_message.id), key="k")
    assert (refused_send["code"], refused_send["field"]) == ("BAD_USER_INPUT", "id")
    # Another owner's account is indistinguishable from none.
    stranger = await make_token((await make_owner()).owner, actions=SCOPES)
    hidden = await call(
        stranger, CREATE, account=encode_id("Account", account.id), input={"subject": "x"}
    )
    assert hidden["code"] == "NOT_FOUND"
    assert gmail.emulator.stats.snapshot()["requests"].get("drafts.create", 0) == before
    assert mailbox.list_drafts().items == []
    assert (await Message.get(id=inbox_message.id)).draft is False


async def test_graph_update_answers_the_new_draft_when_the_old_cannot_be_deleted(
    db: Settings, graph: GraphFactory, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(graph)
    emulator = graph.served.emulator
    mailbox = graph.served.new_mailbox()
    graph.mailboxes[mailbox.address] = mailbox
    emulator.add_message(mailbox.address, subject="Question", message_id="<g9@example.com>")
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.address, provider=Provider.GRAPH)
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    original = await Message.get(account_id=account.id)
    token = await make_token(made.owner, actions=SCOPES)
    saved = await call(
        token, CREATE, account=encode_id("Account", account.id), input={"subject": "v1"}
    )
    old = await cached(saved["id"])
    assert old is not None
    # Someone else deletes the old draft meanwhile: Graph will answer the DELETE with 404.
    emulator.store.delete_message(emulator.user_id(mailbox.address), old.provider_id)

    reply = content(subject="v2", textBody="v2", replyToId=encode_id("Message", original.id))
    updated = await call(token, UPDATE, id=saved["id"], input=reply)
    assert updated["draft"] == {"subject": "v2", "draft": True}, updated
    (draft,) = emulator.store.messages(
        emulator.user_id(mailbox.address), emulator.folder(mailbox.address, "drafts").id
    )
    assert message_from_bytes(draft.mime)["In-Reply-To"] == "<g9@example.com>"
    # The cache keeps the old row until the sync says it is gone.
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    assert await cached(saved["id"]) is None
    assert (await cached(updated["id"])) is not None
