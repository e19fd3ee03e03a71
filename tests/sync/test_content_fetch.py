"""Fetch-through in production wiring: ``sync.content.AdapterFetcher`` over real Gmail adapters.

An account whose policy caches no bodies is synced from the Gmail emulator over HTTP; a
GraphQL read of its body then comes from the provider (``bodySource: PROVIDER``). Attachment
bytes are never cached: the download route gets them from the provider. A provider that
no longer has the message makes the body unavailable, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from app.events import InProcessBus
from app.models import Message, MessageBody
from app.services.message_content import register_content_fetcher
from resolvers.ids import encode_id
from sync.content import AdapterFetcher
from sync.engine import OutcomeKind, sync_account
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_owner, make_token
from tests.sync.harness import EmulatedGmail

READ = """query($id: ID!) { message(id: $id) {
  bodySource bodyUnavailableReason textBody attachments { filename size downloadUrl } } }"""
REPORT = b"%PDF-1.4 quarterly figures\n" * 40


@pytest.fixture
def fetcher(gmail: EmulatedGmail) -> Iterator[None]:
    previous = register_content_fetcher(AdapterFetcher(gmail.adapter_factory))
    yield
    register_content_fetcher(previous)


def _with_attachment(to: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ana <ana@example.com>"
    mail["To"] = to
    mail["Subject"] = "figures"
    mail.set_content("the numbers are attached\n")
    mail.add_attachment(REPORT, maintype="application", subtype="pdf", filename="q3.pdf")
    return mail.as_bytes()


async def test_an_uncached_body_comes_from_gmail(
    gmail: EmulatedGmail, fetcher: None, gql: GraphQLCall
) -> None:
    mailbox = gmail.new_user()
    mailbox.deliver(
        b"From: a@example.com\r\nSubject: hi\r\n\r\nthe numbers follow\r\n", label_ids=["INBOX"]
    )
    owner = (await make_owner()).owner
    account = await make_account(owner, address=mailbox.email, cache_bodies=False)
    outcome = await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    assert outcome.kind is OutcomeKind.SYNCED
    message = await Message.get(account_id=account.id)
    assert not await MessageBody.exists(message_id=message.id)  # the policy kept no body

    body = await gql(await make_token(owner), READ, id=_message_id(message.id))
    read = body["data"]["message"]
    assert read["bodySource"] == "PROVIDER", body
    assert read["textBody"].strip() == "the numbers follow"
    assert not await MessageBody.exists(message_id=message.id)  # and still keeps none


async def test_attachment_bytes_are_downloaded_from_gmail(
    gmail: EmulatedGmail, fetcher: None, gql: GraphQLCall, http: httpx.AsyncClient
) -> None:
    mailbox = gmail.new_user()
    mailbox.deliver(_with_attachment(mailbox.email), label_ids=["INBOX"])
    owner = (await make_owner()).owner
    account = await make_account(owner, address=mailbox.email)
    outcome = await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    assert outcome.kind is OutcomeKind.SYNCED
    message = await Message.get(account_id=account.id)
    token = await make_token(owner)

    body: dict[str, Any] = await gql(token, READ, id=_message_id(message.id))
    [attachment] = body["data"]["message"]["attachments"]
    assert attachment["filename"] == "q3.pdf"
    path = httpx.URL(attachment["downloadUrl"]).path
    download = await http.get(path, headers={"authorization": f"Bearer {token}"})
    assert download.status_code == 200
    assert download.content == REPORT


async def test_a_message_gone_at_the_provider_reads_as_unavailable(
    gmail: EmulatedGmail, fetcher: None, gql: GraphQLCall
) -> None:
    mailbox = gmail.new_user()
    mailbox.deliver(b"From: a@example.com\r\nSubject: soon gone\r\n\r\nbye", label_ids=["INBOX"])
    owner = (await make_owner()).owner
    account = await make_account(owner, address=mailbox.email, cache_bodies=False)
    assert (
        await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    ).kind is OutcomeKind.SYNCED
    message = await Message.get(account_id=account.id)
    mailbox.delete(message.provider_id)

    body = await gql(await make_token(owner), READ, id=_message_id(message.id))
    read = body["data"]["message"]
    assert read["bodySource"] == "UNAVAILABLE", body
    assert read["bodyUnavailableReason"] is not None
    assert read["textBody"] is None


def _message_id(number: int) -> str:
    return encode_id("Message", number)
