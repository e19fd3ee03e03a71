"""``sendMessage`` end to end through GraphQL against the Gmail and Microsoft emulators.

Sent mail lands in the emulator's SENT / sentitems (once per idempotency key), a reply carries
In-Reply-To/References from the cached original and stays in its thread, header injection and
bad addresses are refused with the field named and nothing reaches the provider, a provider
failure is a typed error, and the per-account rate limit holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest

from app.events import InProcessBus
from app.models import Message
from app.services.message_actions import register_message_writer
from app.services.send import reset_rate_limits
from app.settings import Settings
from app.types import Action, Provider
from emulators.gmail_faults import FaultKind
from resolvers.ids import encode_id
from sync.actions import AdapterWriter
from sync.engine import sync_account
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_owner, make_token
from tests.sync.emulated_graph import GraphFactory
from tests.sync.harness import EmulatedGmail

SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    __typename
    ... on MessageSent { messageIdHeader providerMessageId duplicate }
    ... on MutationError { code message field }
  }
}
"""


@pytest.fixture
def writer_for() -> Iterator[Any]:
    previous = register_message_writer(None)
    reset_rate_limits()

    def install(factory: Any) -> None:
        register_message_writer(AdapterWriter(factory, InProcessBus()))

    yield install
    register_message_writer(previous)
    reset_rate_limits()


def draft(account_id: int, key: str, **more: Any) -> dict[str, Any]:
    return {
        "accountId": encode_id("Account", account_id),
        "idempotencyKey": key,
        "to": [{"email": "friend@example.com", "name": "A Friend"}],
        "subject": "Hello",
        "textBody": "hi there",
        **more,
    }


async def send(gql: GraphQLCall, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = await gql(token, SEND, input=payload)
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]["sendMessage"]
    return answer


def gmail_sent(gmail: EmulatedGmail, email: str) -> list[Any]:
    return list(gmail.emulator.mailbox(email).list_messages(label_ids=["SENT"]).items)


def gmail_requests(gmail: EmulatedGmail) -> int:
    return int(gmail.emulator.stats.snapshot()["requests"].get("messages.send", 0))


async def gmail_account(gmail: EmulatedGmail) -> tuple[Any, str, str]:
    mailbox = gmail.new_user()
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.email)
    token = await make_token(made.owner, actions={Action.MESSAGES_SEND})
    return account, mailbox.email, token


async def test_gmail_send_reply_and_idempotency(
    db: Settings, gmail: EmulatedGmail, writer_for: Any, gql: GraphQLCall
) -> None:
    writer_for(gmail.adapter_factory)
    account, email, token = await gmail_account(gmail)
    gmail.emulator.mailbox(email).deliver(
        f"From: friend@example.com\r\nTo: {email}\r\nSubject: Question\r\n"
        "Message-ID: <q1@example.com>\r\nReferences: <q0@example.com>\r\n\r\nwell?".encode(),
        label_ids=["INBOX", "UNREAD"],
    )
    await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    original = await Message.get(account_id=account.id)

    first = await send(gql, token, draft(account.id, "key-1"))
    assert (first["__typename"], first["duplicate"]) == ("MessageSent", False)
    again = await send(gql, token, draft(account.id, "key-1"))
    assert again == {**first, "duplicate": True}
    assert len(gmail_sent(gmail, email)) == 1
    # The sent copy is in the cache, from Gmail's answer.
    assert await Message.filter(
        account_id=account.id, provider_id=first["providerMessageId"]
    ).exists()

    reply = await send(
        gql,
        token,
        draft(
            account.id, "key-2", replyToId=encode_id("Message", original.id), subject="Re: Question"
        ),
    )
    assert reply["__typename"] == "MessageSent"
    stored = gmail.emulator.mailbox(email).get(reply["providerMessageId"])
    assert stored.thread_id == gmail.emulator.mailbox(email).get(original.provider_id).thread_id
    headers = message_from_bytes(stored.raw)
    assert headers["In-Reply-To"] == "<q1@example.com>"
    assert headers["References"] == "<q0@example.com> <q1@example.com>"
    assert len(gmail_sent(gmail, email)) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": "Hi\nX-Evil: 1"}, "subject"),
        (
            {"to": [{"email": "friend@example.com", "name": "A\r\nBcc: v@example.com"}]},
            "to[0].name",
        ),
        ({"to": [{"email": "friend@example.com\r\nBcc: v@example.com"}]}, "to[0].email"),
        ({"cc": [{"email": "a@example.com, b@example.com"}]}, "cc[0].email"),
        ({"bcc": [{"email": "not-an-address"}]}, "bcc[0].email"),
        ({"to": [{"email": f"r{n}@example.com"} for n in range(101)]}, "to"),
        ({"subject": "x" * 1000}, "subject"),
        ({"textBody": None}, "textBody"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_sent(
    db: Settings,
    gmail: EmulatedGmail,
    writer_for: Any,
    gql: GraphQLCall,
    change: dict[str, Any],
    field: str,
) -> None:
    writer_for(gmail.adapter_factory)
    account, email, token = await gmail_account(gmail)
    before = gmail_requests(gmail)
    refused = await send(gql, token, draft(account.id, "k", **change))
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "MutationError",
        "BAD_USER_INPUT",
        field,
    )
    assert gmail_requests(gmail) == before
    assert gmail_sent(gmail, email) == []


async def test_gmail_failure_is_typed_and_the_key_can_be_retried(
    db: Settings, gmail: EmulatedGmail, writer_for: Any, gql: GraphQLCall
) -> None:
    writer_for(gmail.adapter_factory)
    account, email, token = await gmail_account(gmail)
    gmail.emulator.faults.inject(FaultKind.RATE_LIMIT, method="messages.send", user=email)
    failed = await send(gql, token, draft(account.id, "k"))
    assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
    assert gmail_sent(gmail, email) == []
    # A refusal sent nothing, so the same key may be used again.
    assert (await send(gql, token, draft(account.id, "k")))["__typename"] == "MessageSent"
    # A 500 may hide a send that happened: the key is then never sent again.
    gmail.emulator.faults.inject(FaultKind.BACKEND_ERROR, method="messages.send", user=email)
    unknown = await send(gql, token, draft(account.id, "k2"))
    assert unknown["code"] == "PROVIDER_ERROR"
    assert (await send(gql, token, draft(account.id, "k2")))["code"] == "CONFLICT"
    assert len(gmail_sent(gmail, email)) == 1


async def test_the_rate_limit_holds_per_account(
    db: Settings,
    gmail: EmulatedGmail,
    writer_for: Any,
    gql: GraphQLCall,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.services.send._now", lambda: 1000.0)  # no refill
    writer_for(gmail.adapter_factory)
    account, email, token = await gmail_account(gmail)
    answers = [await send(gql, token, draft(account.id, f"k{n}")) for n in range(31)]
    assert [a["__typename"] for a in answers[:30]] == ["MessageSent"] * 30
    assert answers[30]["code"] == "RATE_LIMITED"
    assert len(gmail_sent(gmail, email)) == 30


async def test_graph_send_once_and_refusals(
    db: Settings, graph: GraphFactory, writer_for: Any, gql: GraphQLCall
) -> None:
    writer_for(graph)
    mailbox = graph.served.new_mailbox()
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.address, provider=Provider.GRAPH)
    graph.mailboxes[mailbox.address] = mailbox
    token = await make_token(made.owner, actions={Action.MESSAGES_SEND})
    emulator = graph.served.emulator
    user_id = emulator.user_id(mailbox.address)
    sent_items = emulator.store.folder(user_id, "sentitems").id

    def sent() -> int:
        return len(emulator.store.messages(user_id, sent_items))

    first = await send(gql, token, draft(account.id, "g1", htmlBody="<p>hi</p>"))
    assert (first["__typename"], first["duplicate"]) == ("MessageSent", False)
    assert (await send(gql, token, draft(account.id, "g1")))["duplicate"] is True
    assert sent() == 1

    requests = len(emulator.stats()["requests"])
    refused = await send(gql, token, draft(account.id, "g2", subject="a\r\nBcc: v@example.com"))
    assert (refused["code"], refused["field"]) == ("BAD_USER_INPUT", "subject")
    assert len(emulator.stats()["requests"]) == requests

    emulator.inject_fault(403, count=1, user_ref=mailbox.address)
    failed = await send(gql, token, draft(account.id, "g3"))
    assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
    assert sent() == 1
