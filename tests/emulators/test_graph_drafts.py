"""The Graph emulator's drafts as Graph documents them: created from MIME (base64
``text/plain`` body of ``POST /me/messages``), their subject, body and recipients changed by
PATCH (refused on a message that is no draft), deleted, over HTTPS."""

from __future__ import annotations

import base64
import email
from email.message import EmailMessage

import httpx

from emulators.graph_testing import EmulatedMailbox, ServedEmulator


def reply_mime(mailbox: EmulatedMailbox) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = mailbox.address, "friend@example.com"
    message["Subject"], message["Message-ID"] = "Re: plan", "<d1@example.com>"
    message["In-Reply-To"], message["References"] = (
        "<q1@example.com>",
        "<q0@example.com> <q1@example.com>",
    )
    message.set_content("first words")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="p.pdf")
    return message.as_bytes()


def create(graph: httpx.Client, mime: bytes) -> httpx.Response:
    return graph.post(
        "me/messages", content=base64.b64encode(mime), headers={"Content-Type": "text/plain"}
    )


def test_a_draft_from_mime_keeps_its_headers_and_files(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    created = create(graph, reply_mime(mailbox))
    assert created.status_code == 201
    draft = created.json()
    assert (draft["isDraft"], draft["subject"], draft["hasAttachments"]) == (True, "Re: plan", True)
    assert draft["parentFolderId"] == served.emulator.folder(mailbox.oid, "drafts").id
    stored = email.message_from_bytes(graph.get(f"me/messages/{draft['id']}/$value").content)
    assert stored["In-Reply-To"] == "<q1@example.com>"
    bad = graph.post("me/messages", content=b"not base64!", headers={"Content-Type": "text/plain"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "ErrorInvalidRequest")


def test_patch_changes_a_drafts_content_and_keeps_the_rest(
    mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    draft = create(graph, reply_mime(mailbox)).json()
    changed = graph.patch(
        f"me/messages/{draft['id']}",
        json={
            "subject": "Re: plan (v2)",
            "body": {"contentType": "HTML", "content": "<p>second</p>"},
            "toRecipients": [{"emailAddress": {"address": "other@example.com"}}],
        },
    )
    assert changed.status_code == 200
    body = changed.json()
    assert (body["id"], body["subject"], body["isDraft"]) == (draft["id"], "Re: plan (v2)", True)
    assert [r["emailAddress"]["address"] for r in body["toRecipients"]] == ["other@example.com"]
    stored = email.message_from_bytes(graph.get(f"me/messages/{draft['id']}/$value").content)
    assert stored["In-Reply-To"] == "<q1@example.com>"
    assert stored["Message-ID"] == "<d1@example.com>"
    assert [part.get_filename() for part in stored.walk() if part.get_filename()] == ["p.pdf"]
    assert graph.delete(f"me/messages/{draft['id']}").status_code == 204
    assert graph.get(f"me/messages/{draft['id']}").status_code == 404


def test_patch_refuses_content_changes_to_a_message_that_is_no_draft(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    received = served.emulator.add_message(mailbox.address, subject="hello", text="hi")
    refused = graph.patch(f"me/messages/{received.immutable_id}", json={"subject": "changed"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ErrorInvalidPropertyUpdateSentMessage"
    assert served.emulator.message(mailbox.address, received.immutable_id).content.subject == (
        "hello"
    )
