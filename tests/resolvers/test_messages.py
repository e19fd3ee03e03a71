"""Messages over GraphQL: envelope and flags, filters, content with its source, attachments."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from app import clock
from app.models import MessageBody
from app.services.message_content import register_content_fetcher
from app.types import AccountId, Action
from resolvers.ids import encode_id
from sync.providers.errors import TransientError
from sync.providers.records import AttachmentRecord, MessageContent
from tests.conftest import GraphQLCall
from tests.factories import (
    address,
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
    make_token,
)

ENVELOPE = """
query($filter: MessageFilter) {
  messages(filter: $filter, first: 50) {
    nodes { id subject snippet date unread starred draft size hasAttachments messageId inReplyTo
            references from { name address } to { address } cc { address } bcc { address }
            replyTo { address } labels { name role } thread { subject } }
  }
}
"""


class FakeFetcher:
    """A content fetcher standing where the sync side's provider fetcher will stand."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[int, str]] = []

    async def fetch_content(
        self, account_id: AccountId, provider_message_id: str
    ) -> MessageContent:
        self.calls.append((account_id, provider_message_id))
        if self.fail:
            raise TransientError("provider down")
        return MessageContent(
            text_body=f"fetched {provider_message_id}",
            html_body="<p onclick='x()'>fetched</p>",
            headers=(("Subject", "fetched"),),
            raw_mime=b"Subject: fetched\r\n\r\nfetched\r\n",
        )

    async def fetch_attachment(
        self, account_id: AccountId, provider_message_id: str, attachment: AttachmentRecord
    ) -> bytes:
        return b"%PDF-" + attachment.filename.encode()


@pytest.fixture
def fetcher() -> Iterator[FakeFetcher]:
    fake = FakeFetcher()
    previous = register_content_fetcher(fake)
    yield fake
    register_content_fetcher(previous)


def nodes(body: dict[str, Any], field: str = "messages") -> list[dict[str, Any]]:
    assert "errors" not in body, body
    result: list[dict[str, Any]] = body["data"][field]["nodes"]
    return result


async def test_envelope_flags_labels_and_thread(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    inbox = await make_folder(account, name="Inbox", role="inbox")
    thread = await make_thread(account, subject="Lunch?")
    await make_message(
        account,
        folders=[inbox],
        thread=thread,
        subject="Lunch on Friday",
        from_addresses=[address("ada@example.com", "Ada")],
        cc_addresses=[address("cc@example.com")],
        bcc_addresses=[address("bcc@example.com")],
        reply_to_addresses=[address("reply@example.com")],
        unread=True,
        starred=True,
        size=1234,
        message_id_header="<m1@example.com>",
        in_reply_to="<m0@example.com>",
        references=["<m0@example.com>"],
    )
    [message] = nodes(await gql(made.token, ENVELOPE))
    assert message["subject"] == "Lunch on Friday"
    assert message["from"] == [{"name": "Ada", "address": "ada@example.com"}]
    assert message["to"] == [{"address": account.address}]
    assert message["cc"] == [{"address": "cc@example.com"}]
    assert message["bcc"] == [{"address": "bcc@example.com"}]
    assert message["replyTo"] == [{"address": "reply@example.com"}]
    assert (message["unread"], message["starred"], message["draft"]) == (True, True, False)
    assert message["size"] == 1234
    assert message["messageId"] == "<m1@example.com>"
    assert message["inReplyTo"] == "<m0@example.com>"
    assert message["references"] == ["<m0@example.com>"]
    assert message["labels"] == [{"name": "Inbox", "role": "INBOX"}]
    assert message["thread"] == {"subject": "Lunch?"}
    assert message["date"].endswith("+00:00")


async def test_newest_first_and_by_id(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    now = clock.now()
    old = await make_message(account, subject="old", date=now - timedelta(days=2))
    new = await make_message(account, subject="new", date=now)
    mid = await make_message(account, subject="mid", date=now - timedelta(days=1))
    listed = nodes(await gql(made.token, "{ messages { nodes { id subject } } }"))
    assert [m["subject"] for m in listed] == ["new", "mid", "old"]
    assert [m["id"] for m in listed] == [encode_id("Message", row.id) for row in (new, mid, old)]
    found = await gql(
        made.token,
        "query($id: ID!) { message(id: $id) { subject } }",
        id=encode_id("Message", mid.id),
    )
    assert found["data"]["message"] == {"subject": "mid"}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"unread": True}, ["unread"]),
        ({"unread": False}, ["starred", "attached", "from-ada", "to-bob", "invoice", "old"]),
        ({"starred": True}, ["starred"]),
        ({"hasAttachments": True}, ["attached"]),
        ({"from": "ADA@EXAMPLE"}, ["from-ada"]),
        ({"from": "Lovelace"}, ["from-ada"]),
        ({"from": "email"}, []),
        ({"to": "name"}, []),
        ({"to": "bob@"}, ["to-bob"]),
        ({"subject": "INVOICE"}, ["invoice"]),
        ({"subject": "100%"}, []),
        ({"until": "2020-01-02T00:00:00+00:00"}, ["old"]),
        ({"since": "2020-01-02T00:00:00+00:00", "unread": True}, ["unread"]),
    ],
)
async def test_filters(
    db: object, gql: GraphQLCall, condition: dict[str, Any], expected: list[str]
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    await make_message(account, subject="unread", unread=True)
    await make_message(account, subject="starred", starred=True)
    await make_message(
        account,
        subject="attached",
        attachments=[{"filename": "a.pdf", "content_type": "application/pdf", "size": 3}],
    )
    await make_message(
        account, subject="from-ada", from_addresses=[address("ada@example.com", "Ada Lovelace")]
    )
    await make_message(
        account, subject="to-bob", to_addresses=[], cc_addresses=[address("bob@example.com")]
    )
    await make_message(account, subject="Your invoice")
    await make_message(account, subject="old", date=clock.now().replace(year=2020, month=1, day=1))
    listed = nodes(await gql(made.token, ENVELOPE, filter=condition))
    expected_subjects = ["Your invoice" if s == "invoice" else s for s in expected]
    assert [m["subject"] for m in listed] == expected_subjects


async def test_folder_thread_and_account_filters(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    first = await make_account(made.owner)
    second = await make_account(made.owner)
    folder = await make_folder(first)
    thread = await make_thread(first)
    await make_message(first, subject="filed", folders=[folder])
    await make_message(first, subject="threaded", thread=thread)
    await make_message(second, subject="elsewhere")
    query = "query($f: MessageFilter) { messages(filter: $f) { nodes { subject } } }"

    async def subjects(condition: dict[str, Any]) -> list[str]:
        return [m["subject"] for m in nodes(await gql(made.token, query, f=condition))]

    assert await subjects({"folderId": encode_id("Folder", folder.id)}) == ["filed"]
    assert await subjects({"threadId": encode_id("Thread", thread.id)}) == ["threaded"]
    assert await subjects({"accountId": encode_id("Account", second.id)}) == ["elsewhere"]
    assert sorted(await subjects({})) == ["elsewhere", "filed", "threaded"]
    assert await subjects({"folderId": "not-an-id"}) == []


CONTENT = """
query($id: ID!) {
  message(id: $id) {
    bodySource bodyUnavailableReason textBody htmlBody hasRemoteImages rawHtmlBody rawMime
    headers { name value }
  }
}
"""


async def test_cached_content(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    raw_html = '<p>Hi</p><script>alert(1)</script><img src="https://t.example/p.gif">'
    message = await make_message(
        account,
        body={
            "text_body": "Hi",
            "html_body": raw_html,
            "headers": [["Subject", "Hi"], ["X-Test", "1"]],
            "raw_mime": b"Subject: Hi\r\n\r\nHi\r\n",
        },
    )
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert "errors" not in body, body
    content = body["data"]["message"]
    assert content["bodySource"] == "CACHE"
    assert content["bodyUnavailableReason"] is None
    assert content["textBody"] == "Hi"
    assert content["htmlBody"] == '<p>Hi</p><img data-remote-src="https://t.example/p.gif">'
    assert content["hasRemoteImages"] is True
    assert content["rawHtmlBody"] == raw_html
    assert base64.b64decode(content["rawMime"]) == b"Subject: Hi\r\n\r\nHi\r\n"
    assert content["headers"] == [
        {"name": "Subject", "value": "Hi"},
        {"name": "X-Test", "value": "1"},
    ]


async def test_uncached_body_without_fetcher_is_unavailable(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(account)
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert "errors" not in body, body
    content = body["data"]["message"]
    assert content["bodySource"] == "UNAVAILABLE"
    assert content["bodyUnavailableReason"] == "NO_FETCHER"
    assert content["textBody"] is None
    assert content["htmlBody"] is None
    assert content["headers"] == []


async def test_uncached_body_is_fetched_through_and_cached(
    db: object, gql: GraphQLCall, fetcher: FakeFetcher
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(account, provider_id="p-1")
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    content = body["data"]["message"]
    assert content["bodySource"] == "PROVIDER"
    assert content["textBody"] == "fetched p-1"
    assert content["htmlBody"] == "<p>fetched</p>"
    assert base64.b64decode(content["rawMime"]).startswith(b"Subject: fetched")
    assert fetcher.calls == [(account.id, "p-1")], "one fetch serves every content field"
    stored = await MessageBody.get(message_id=message.id)
    assert stored.text_body == "fetched p-1"
    again = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert again["data"]["message"]["bodySource"] == "CACHE"
    assert len(fetcher.calls) == 1


async def test_fetched_body_is_not_stored_when_policy_says_so(
    db: object, gql: GraphQLCall, fetcher: FakeFetcher
) -> None:
    made = await make_owner()
    account = await make_account(made.owner, cache_bodies=False)
    message = await make_message(account)
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert body["data"]["message"]["bodySource"] == "PROVIDER"
    assert not await MessageBody.filter(message_id=message.id).exists()


async def test_policy_without_fetch_through(
    db: object, gql: GraphQLCall, fetcher: FakeFetcher
) -> None:
    made = await make_owner()
    account = await make_account(made.owner, fetch_uncached_bodies=False)
    message = await make_message(account)
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert body["data"]["message"]["bodyUnavailableReason"] == "NOT_CACHED"
    assert fetcher.calls == []


async def test_provider_failure_is_reported_not_raised(
    db: object, gql: GraphQLCall, fetcher: FakeFetcher
) -> None:
    fetcher.fail = True
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(account)
    body = await gql(made.token, CONTENT, id=encode_id("Message", message.id))
    assert "errors" not in body, body
    assert body["data"]["message"]["bodySource"] == "UNAVAILABLE"
    assert body["data"]["message"]["bodyUnavailableReason"] == "PROVIDER_ERROR"


async def test_attachments_have_download_urls(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(
        account,
        attachments=[
            {"filename": "a.pdf", "content_type": "application/pdf", "size": 10},
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "size": 5,
                "content_id": "logo@x",
                "inline": True,
            },
        ],
    )
    body = await gql(
        made.token,
        "query($id: ID!) { message(id: $id) { hasAttachments attachments { id filename "
        "contentType size contentId inline downloadUrl } } }",
        id=encode_id("Message", message.id),
    )
    assert "errors" not in body, body
    found = body["data"]["message"]
    assert found["hasAttachments"] is True
    first, second = found["attachments"]
    assert (first["filename"], first["contentType"], first["size"]) == (
        "a.pdf",
        "application/pdf",
        10,
    )
    assert (second["contentId"], second["inline"]) == ("logo@x", True)
    assert first["downloadUrl"].endswith("/attachments/" + first["id"])
    assert first["downloadUrl"].startswith("http")


async def test_content_needs_its_own_scope(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(account, body={"text_body": "secret words"})
    token = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    body = await gql(
        token,
        "query($id: ID!) { message(id: $id) { subject textBody } }",
        id=encode_id("Message", message.id),
    )
    assert body["data"]["message"]["textBody"] is None
    assert body["data"]["message"]["subject"] == message.subject
    assert "secret words" not in str(body)
    [error] = body["errors"]
    assert error["extensions"]["missingScope"] == "messages:content"
    assert error["path"] == ["message", "textBody"]
