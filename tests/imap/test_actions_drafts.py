"""Drafts of IMAP accounts through GraphQL: kept in Dovecot's \\Drafts, sent through SMTP.

createDraft APPENDs to \\Drafts flagged \\Draft, updateDraft APPENDs the new version and expunges
the old one (the draft's id changes, as the schema says), sendDraft sends the stored MIME to
the SMTP sink once per idempotency key, files the copy in \\Sent and expunges the draft,
deleteDraft expunges it; after each, the cache equals what another IMAP client sees.
"""

from __future__ import annotations

from typing import Any

from resolvers.ids import encode_id
from tests.imap import test_actions
from tests.imap.test_actions import Connected, assert_cache_is_the_server
from tests.support.dovecot import OtherClient
from tests.sync.test_drafts import CREATE, DELETE, SEND_DRAFT, UPDATE

# The fixtures this module shares, by name.
connected = test_actions.connected
live_server = test_actions.live_server
ring = test_actions.ring
smtp_security = test_actions.smtp_security
server_settings = test_actions.server_settings
smtp_password_stored = test_actions.smtp_password_stored


async def field(connected: Connected, query: str, **variables: Any) -> dict[str, Any]:
    body = await connected.call(query, **variables)
    answer: dict[str, Any] = next(iter(body["data"].values()))
    return answer


def content(subject: str, body: str) -> dict[str, Any]:
    return {"to": [{"email": "friend@example.com"}], "subject": subject, "textBody": body}


def drafts_and_sent(connected: Connected) -> tuple[list[Any], list[Any]]:
    mailbox = connected.mailbox
    with mailbox.server.client(mailbox.user) as other:
        return _messages(other, "Drafts"), _messages(other, "Sent")


def _messages(other: OtherClient, folder: str) -> list[tuple[frozenset[str], bytes]]:
    return list(other.fetch_all(folder).values())


async def test_drafts_live_in_drafts_and_are_sent_once(connected: Connected) -> None:
    account = encode_id("Account", connected.account.id)

    saved = await field(connected, CREATE, account=account, input=content("plan", "v1"))
    assert saved["__typename"] == "DraftSaved", saved
    assert saved["draft"] == {"subject": "plan", "draft": True}
    drafts, _ = drafts_and_sent(connected)
    assert [("\\Draft" in flags, b"v1" in raw) for flags, raw in drafts] == [(True, True)]
    await assert_cache_is_the_server(connected, ["Drafts", "Sent"])

    updated = await field(connected, UPDATE, id=saved["id"], input=content("plan B", "v2"))
    assert updated["draft"] == {"subject": "plan B", "draft": True}
    drafts, _ = drafts_and_sent(connected)
    assert [b"v2" in raw for _, raw in drafts] == [True]  # the old version is gone
    await assert_cache_is_the_server(connected, ["Drafts", "Sent"])

    first = await field(connected, SEND_DRAFT, id=updated["id"], key="draft-1")
    again = await field(connected, SEND_DRAFT, id=updated["id"], key="draft-1")
    assert (first["__typename"], first["duplicate"]) == ("MessageSent", False), first
    assert again["duplicate"] is True
    assert len(connected.sink.received) == 1
    assert b"v2" in connected.sink.received[0].data
    drafts, sent = drafts_and_sent(connected)
    assert drafts == []
    assert [("\\Seen" in flags, "\\Draft" in flags) for flags, _ in sent] == [(True, False)]
    await assert_cache_is_the_server(connected, ["Drafts", "Sent"])


async def test_a_deleted_draft_is_expunged(connected: Connected) -> None:
    account = encode_id("Account", connected.account.id)
    saved = await field(connected, CREATE, account=account, input={"subject": "no one yet"})

    deleted = await field(connected, DELETE, id=saved["id"])

    assert deleted == {"__typename": "DraftDeleted", "id": saved["id"]}
    assert drafts_and_sent(connected) == ([], [])
    await assert_cache_is_the_server(connected, ["Drafts", "Sent"])
    assert connected.sink.received == []
