"""Attachments on sendMessage and drafts, and the sent copy in the cache, end to end: GraphQL over
real HTTP to a live server (small limits set per test), the Gmail and Microsoft emulators.

Files arrive in the emulated mailbox as ``attachment`` MIME parts with their names, types and
bytes; an attachment of a cached message is forwarded from the provider's bytes; over a limit
is ``PAYLOAD_TOO_LARGE``, a bad file name, content type or base64 is ``BAD_USER_INPUT``, and
nothing reaches the provider. After a Gmail send the sent copy is in the cache with a change
event; after a Graph send the account is due and the answer says so.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.policy import SMTP
from typing import Any

import pytest

from app import clock
from app.events import InProcessBus
from app.models import Account, Attachment, Message, SyncState
from app.services.message_content import register_content_fetcher
from app.settings import Settings
from app.types import Action, Provider
from resolvers.ids import encode_id
from sync.content import AdapterFetcher
from sync.engine import OutcomeKind, sync_account
from tests.factories import make_account, make_owner, make_token
from tests.subscriptions.conftest import LiveServer, LiveServerFactory, gql_subscription
from tests.subscriptions.conftest import live_server as live_server
from tests.sync.emulated_graph import GraphFactory
from tests.sync.harness import EmulatedGmail
from tests.sync.test_drafts import CREATE, EVENTS, Call
from tests.sync.test_drafts import call as call
from tests.sync.test_drafts import writer_for as writer_for

SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  __typename
  ... on MessageSent { messageIdHeader providerMessageId duplicate syncRequested }
  ... on MutationError { code message field } } }"""
LIMITS = {
    "max_attachments": 3,
    "max_attachment_bytes": 4000,
    "max_message_bytes": 12000,
    "graph_max_message_bytes": 6000,
}
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


@pytest.fixture
async def server(live_server: LiveServerFactory) -> AsyncIterator[LiveServer]:
    async with live_server(**LIMITS) as served:
        yield served


@pytest.fixture
def fetcher_for() -> Iterator[Callable[[Any], None]]:
    previous = register_content_fetcher(None)

    def install(factory: Any) -> None:
        register_content_fetcher(AdapterFetcher(factory))

    yield install
    register_content_fetcher(previous)


def inline(filename: str, content_type: str, data: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "contentType": content_type,
        "content": base64.b64encode(data).decode(),
    }


def message(account_id: int, key: str, **more: Any) -> dict[str, Any]:
    return {
        "accountId": encode_id("Account", account_id),
        "idempotencyKey": key,
        "to": [{"email": "friend@example.com"}],
        "subject": "Files",
        "textBody": "see attached",
        **more,
    }


def attached(raw: bytes) -> list[tuple[str | None, str, bytes]]:
    parsed = message_from_bytes(raw, policy=SMTP)
    assert isinstance(parsed, EmailMessage)
    return [
        (part.get_filename(), part.get_content_type(), _payload(part))
        for part in parsed.iter_attachments()
    ]


def _payload(part: MimeMessage) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


async def gmail_account(gmail: EmulatedGmail, *, with_file: bool = False) -> tuple[Any, Any, str]:
    mailbox = gmail.new_user()
    if with_file:
        original = EmailMessage()
        original["From"], original["To"] = "a@example.com", mailbox.email
        original["Subject"] = "the report"
        original.set_content("attached")
        original.add_attachment(PDF, maintype="application", subtype="pdf", filename="r.pdf")
        mailbox.deliver(original.as_bytes(), label_ids=["INBOX"])
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.email)
    outcome = await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    assert outcome.kind is OutcomeKind.SYNCED
    scopes = {Action.MESSAGES_SEND, Action.MESSAGES_DRAFTS, Action.MESSAGES_METADATA}
    return account, mailbox, await make_token(made.owner, actions=scopes)


def sent_count(gmail: EmulatedGmail, mailbox: Any) -> int:
    return len(list(mailbox.list_messages(label_ids=["SENT"]).items))


async def test_gmail_send_with_attachments_and_a_forwarded_file(
    db: Settings,
    gmail: EmulatedGmail,
    server: LiveServer,
    writer_for: Any,
    fetcher_for: Any,
    call: Call,
) -> None:
    writer_for(gmail.adapter_factory)
    fetcher_for(gmail.adapter_factory)
    account, mailbox, token = await gmail_account(gmail, with_file=True)
    report = await Attachment.get(message__account_id=account.id)
    files = [
        inline("notes ä.txt", "text/plain", "grüße\n".encode()),
        inline("data.bin", "application/octet-stream", bytes(range(256))),
        {"attachmentId": encode_id("Attachment", report.id)},
    ]
    async with gql_subscription(server, token, EVENTS) as next_event:
        sent = await call(token, SEND, input=message(account.id, "a1", attachments=files))
        assert (sent["__typename"], sent["syncRequested"]) == ("MessageSent", False), sent
        # The sent copy is in the cache from Gmail's answer, with a change event.
        copy = await Message.get(account_id=account.id, provider_id=sent["providerMessageId"])
        event = await next_event()
        assert (event["kind"], event["messageId"]) == (
            "MESSAGE_ADDED",
            encode_id("Message", copy.id),
        )
    assert "SENT" in copy.label_ids
    assert attached(mailbox.get(sent["providerMessageId"]).raw) == [
        ("notes ä.txt", "text/plain", "grüße\n".encode()),
        ("data.bin", "application/octet-stream", bytes(range(256))),
        ("r.pdf", "application/pdf", PDF),
    ]


async def test_drafts_carry_attachments(
    db: Settings, gmail: EmulatedGmail, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(gmail.adapter_factory)
    account, mailbox, token = await gmail_account(gmail)
    files = [inline("plan.pdf", "application/pdf", PDF)]
    saved = await call(
        token,
        CREATE,
        account=encode_id("Account", account.id),
        input={"subject": "draft with a file", "attachments": files},
    )
    assert saved["__typename"] == "DraftSaved", saved
    (draft,) = mailbox.list_drafts().items
    assert attached(draft.message.raw) == [("plan.pdf", "application/pdf", PDF)]
    # The next sync confirms the draft the cache took from Gmail's answer: same row, no twin.
    assert (await sync_account(account.id, gmail.adapter_factory, InProcessBus())).kind is (
        OutcomeKind.SYNCED
    )
    drafts = await Message.filter(account_id=account.id, draft=True).values_list("id", flat=True)
    assert [encode_id("Message", number) for number in drafts] == [saved["id"]]


@pytest.mark.parametrize(
    ("files", "code", "field"),
    [
        ([inline("a.txt", "text/plain", b"x")] * 4, "PAYLOAD_TOO_LARGE", "attachments"),
        (
            [inline("big.bin", "application/octet-stream", b"x" * 4001)],
            "PAYLOAD_TOO_LARGE",
            "attachments[0].content",
        ),
        (
            [inline(f"f{n}.bin", "application/octet-stream", b"y" * 3900) for n in range(3)],
            "PAYLOAD_TOO_LARGE",
            "attachments",
        ),
        (
            [inline("../etc/passwd", "text/plain", b"x")],
            "BAD_USER_INPUT",
            "attachments[0].filename",
        ),
        (
            [inline("dir\\evil.exe", "text/plain", b"x")],
            "BAD_USER_INPUT",
            "attachments[0].filename",
        ),
        (
            [inline("a.txt\r\nBcc: victim@example.com", "text/plain", b"x")],
            "BAD_USER_INPUT",
            "attachments[0].filename",
        ),
        ([inline("..", "text/plain", b"x")], "BAD_USER_INPUT", "attachments[0].filename"),
        ([inline("", "text/plain", b"x")], "BAD_USER_INPUT", "attachments[0].filename"),
        (
            [inline("a.txt", "text/plain\r\nX-Evil: 1", b"x")],
            "BAD_USER_INPUT",
            "attachments[0].contentType",
        ),
        (
            [inline("a.eml", "multipart/mixed", b"x")],
            "BAD_USER_INPUT",
            "attachments[0].contentType",
        ),
        (
            [{"filename": "a.txt", "contentType": "text/plain", "content": "not base64!"}],
            "BAD_USER_INPUT",
            "attachments[0].content",
        ),
        ([{"filename": "a.txt", "contentType": "text/plain"}], "BAD_USER_INPUT", "attachments[0]"),
        (
            [{"attachmentId": encode_id("Attachment", 999999)}],
            "BAD_USER_INPUT",
            "attachments[0].attachmentId",
        ),
        (
            [{"attachmentId": encode_id("Message", 1)}],
            "BAD_USER_INPUT",
            "attachments[0].attachmentId",
        ),
    ],
)
async def test_limits_and_bad_files_are_refused_and_nothing_is_sent(
    db: Settings,
    gmail: EmulatedGmail,
    server: LiveServer,
    writer_for: Any,
    call: Call,
    files: list[dict[str, Any]],
    code: str,
    field: str,
) -> None:
    writer_for(gmail.adapter_factory)
    account, mailbox, token = await gmail_account(gmail)
    requests = dict(gmail.emulator.stats.snapshot()["requests"])
    refused = await call(token, SEND, input=message(account.id, "k", attachments=files))
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "MutationError",
        code,
        field,
    ), refused
    as_draft = await call(
        token, CREATE, account=encode_id("Account", account.id), input={"attachments": files}
    )
    assert (as_draft["code"], as_draft["field"]) == (code, field)
    after = gmail.emulator.stats.snapshot()["requests"]
    for method in ("messages.send", "drafts.create"):
        assert after.get(method, 0) == requests.get(method, 0)
    assert sent_count(gmail, mailbox) == 0
    assert mailbox.list_drafts().items == []


async def graph_account(graph: GraphFactory) -> tuple[Account, str, Callable[[], list[Any]]]:
    """A synced Microsoft account, a sending token, and its emulated Sent Items."""
    emulator = graph.served.emulator
    mailbox = graph.served.new_mailbox()
    graph.mailboxes[mailbox.address] = mailbox
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.address, provider=Provider.GRAPH)
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    user_id = emulator.user_id(mailbox.address)
    sent_items = emulator.store.folder(user_id, "sentitems").id
    token = await make_token(made.owner, actions={Action.MESSAGES_SEND})
    return account, token, lambda: emulator.store.messages(user_id, sent_items)


async def test_graph_send_with_attachments_requests_a_sync(
    db: Settings, graph: GraphFactory, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(graph)
    account, token, sent_items = await graph_account(graph)
    state = await SyncState.get(account_id=account.id)
    assert state.next_run_at is not None
    assert state.next_run_at > clock.now()

    files = [inline("plan.pdf", "application/pdf", PDF)]
    sent = await call(token, SEND, input=message(account.id, "g1", attachments=files))
    assert (sent["__typename"], sent["providerMessageId"], sent["syncRequested"]) == (
        "MessageSent",
        None,
        True,
    ), sent
    (copy,) = sent_items()
    assert attached(copy.mime) == [("plan.pdf", "application/pdf", PDF)]
    # Graph answered 202 without the copy: the account is due now, and that sync brings it.
    state = await SyncState.get(account_id=account.id)
    assert state.next_run_at is not None
    assert state.next_run_at <= clock.now()
    assert (await sync_account(account.id, graph, InProcessBus())).kind is OutcomeKind.SYNCED
    assert await Message.exists(account_id=account.id, provider_id=copy.immutable_id)


async def test_graph_messages_over_graphs_request_limit_are_refused(
    db: Settings, graph: GraphFactory, server: LiveServer, writer_for: Any, call: Call
) -> None:
    writer_for(graph)
    account, token, sent_items = await graph_account(graph)
    # Within the general limits (LIMITS), over Graph's (set small for this server).
    files = [inline(f"{n}.bin", "application/octet-stream", b"z" * 1500) for n in range(3)]
    refused = await call(token, SEND, input=message(account.id, "g2", attachments=files))
    assert (refused["code"], refused["field"]) == ("PAYLOAD_TOO_LARGE", "attachments")
    assert sent_items() == []
