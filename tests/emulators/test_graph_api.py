"""Graph v1.0 mail endpoints over https: auth, folders, messages, MIME, moves, sending."""

from __future__ import annotations

import base64
import email

import httpx
import pytest

from emulators.graph_mime import Attachment
from emulators.graph_testing import EmulatedMailbox, ServedEmulator


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not.a.token", "Basic abc"])
def test_requests_without_a_valid_bearer_token_get_401(
    served: ServedEmulator, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with served.graph_client(None) as graph:
        answer = graph.get("me/mailFolders", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_mail_needs_a_mail_permission(served: ServedEmulator) -> None:
    mailbox = served.new_mailbox(scopes=["User.Read"])
    with served.graph_client(mailbox.token) as graph:
        assert graph.get("me").status_code == 200
        refused = graph.get("me/mailFolders")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ErrorAccessDenied"


def test_users_path_reaches_only_the_signed_in_mailbox(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    other = served.new_mailbox()
    assert graph.get(f"users/{mailbox.address}/mailFolders/inbox").status_code == 200
    assert graph.get(f"users/{mailbox.oid}/mailFolders/inbox").status_code == 200
    assert graph.get(f"users/{other.address}/mailFolders/inbox").status_code == 403


def test_folders_list_children_and_can_be_created(graph: httpx.Client) -> None:
    top = graph.get("me/mailFolders?$top=50").json()["value"]
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk Email", "Archive"} <= {
        f["displayName"] for f in top
    }
    created = graph.post("me/mailFolders/inbox/childFolders", json={"displayName": "Receipts"})
    assert created.status_code == 201
    inbox = graph.get("me/mailFolders/inbox").json()
    children = graph.get("me/mailFolders/inbox/childFolders").json()["value"]

    assert inbox["childFolderCount"] == 1
    assert [(c["displayName"], c["parentFolderId"]) for c in children] == [
        ("Receipts", inbox["id"])
    ]


def test_a_message_has_graph_properties_and_select_narrows_them(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    parent = served.emulator.add_message(
        mailbox.oid, subject="Lunch?", sender="Ann <ann@example.com>", text="Shall we?"
    )
    reply = served.emulator.add_message(
        mailbox.oid,
        subject="Re: Lunch?",
        sender="Bob <bob@example.com>",
        cc=["Cy <cy@example.com>"],
        html="<p>Yes <b>please</b></p>",
        in_reply_to=parent.internet_message_id,
    )

    full = graph.get(f"me/messages/{reply.rest_id}").json()
    narrow = graph.get(f"me/messages/{reply.rest_id}?$select=subject,from").json()
    as_text = graph.get(
        f"me/messages/{reply.rest_id}", headers={"Prefer": 'outlook.body-content-type="text"'}
    ).json()

    assert full["subject"] == "Re: Lunch?"
    assert full["from"] == {"emailAddress": {"name": "Bob", "address": "bob@example.com"}}
    assert full["ccRecipients"] == [{"emailAddress": {"name": "Cy", "address": "cy@example.com"}}]
    assert full["toRecipients"][0]["emailAddress"]["address"] == mailbox.address
    assert full["conversationId"] == parent.conversation_id
    assert full["internetMessageId"] == reply.internet_message_id
    assert full["body"]["contentType"] == "html"
    assert full["bodyPreview"] == "Yes please"
    assert (full["isRead"], full["flag"], full["hasAttachments"]) == (
        False,
        {"flagStatus": "notFlagged"},
        False,
    )
    assert full["parentFolderId"] == served.emulator.folder(mailbox.oid, "inbox").id
    assert set(narrow) == {"@odata.etag", "id", "subject", "from"}
    assert as_text["body"]["contentType"] == "text"
    assert "please" in as_text["body"]["content"]


def test_value_returns_the_mime_and_attachments_come_as_base64(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    message = served.emulator.add_message(
        mailbox.oid,
        subject="Invoice",
        attachments=[Attachment("invoice.pdf", "application/pdf", b"%PDF-1.7 fake")],
    )

    mime = graph.get(f"me/messages/{message.rest_id}/$value")
    listed = graph.get(f"me/messages/{message.rest_id}/attachments").json()["value"]
    one = graph.get(f"me/messages/{message.rest_id}/attachments/{listed[0]['id']}").json()

    assert mime.headers["content-type"].startswith("message/rfc822")
    assert mime.content == message.mime
    assert email.message_from_bytes(mime.content)["Subject"] == "Invoice"
    assert one["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert (one["name"], one["contentType"], one["size"]) == ("invoice.pdf", "application/pdf", 13)
    assert base64.b64decode(one["contentBytes"]) == b"%PDF-1.7 fake"
    assert graph.get(f"me/messages/{message.rest_id}").json()["hasAttachments"] is True


def test_patch_changes_read_flag_and_categories_only(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    message = served.emulator.add_message(mailbox.oid, subject="Patch me")
    changes = {"isRead": True, "flag": {"flagStatus": "flagged"}, "categories": ["Red"]}

    patched = graph.patch(f"me/messages/{message.rest_id}", json=changes)
    refused = graph.patch(f"me/messages/{message.rest_id}", json={"subject": "no"})

    assert patched.status_code == 200
    assert {k: patched.json()[k] for k in changes} == changes
    assert refused.status_code == 400
    stored = served.emulator.message(mailbox.oid, message.immutable_id)
    assert (stored.is_read, stored.flag_status, stored.categories) == (True, "flagged", ("Red",))


def test_move_changes_the_default_id_but_not_the_immutable_one(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    first = served.emulator.add_message(mailbox.oid, subject="one")
    second = served.emulator.add_message(mailbox.oid, subject="two")
    with served.graph_client(mailbox.token, immutable_ids=True) as immutable_graph:
        moved_immutable = immutable_graph.post(
            f"me/messages/{second.immutable_id}/move", json={"destinationId": "archive"}
        )
    moved = graph.post(f"me/messages/{first.rest_id}/move", json={"destinationId": "archive"})

    assert moved.status_code == moved_immutable.status_code == 201
    assert moved.json()["id"] != first.rest_id
    assert graph.get(f"me/messages/{first.rest_id}").status_code == 404
    assert graph.get(f"me/messages/{moved.json()['id']}").json()["subject"] == "one"
    assert moved_immutable.json()["id"] == second.immutable_id
    assert moved_immutable.headers["Preference-Applied"] == 'IdType="ImmutableId"'
    archive = served.emulator.folder(mailbox.oid, "archive").id
    assert moved.json()["parentFolderId"] == moved_immutable.json()["parentFolderId"] == archive


def test_delete_removes_the_message(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    message = served.emulator.add_message(mailbox.oid, subject="bye")
    assert graph.delete(f"me/messages/{message.rest_id}").status_code == 204
    gone = graph.get(f"me/messages/{message.rest_id}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "ErrorItemNotFound")


def test_lists_page_with_top_and_next_links(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    for n in range(5):
        served.emulator.add_message(mailbox.oid, subject=f"m{n}")
    subjects: list[str] = []
    url: str | None = "me/mailFolders/inbox/messages?$top=2&$select=subject"
    while url:
        page = graph.get(url).json()
        subjects += [m["subject"] for m in page["value"]]
        url = page.get("@odata.nextLink")
    assert subjects == ["m4", "m3", "m2", "m1", "m0"]


def test_send_mail_keeps_a_copy_and_delivers_to_emulated_recipients(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    colleague = served.new_mailbox()
    message = {
        "subject": "Report",
        "body": {"contentType": "Text", "content": "Attached."},
        "toRecipients": [{"emailAddress": {"address": colleague.address}}],
        "bccRecipients": [{"emailAddress": {"address": "outside@example.com"}}],
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "r.txt",
                "contentType": "text/plain",
                "contentBytes": base64.b64encode(b"numbers").decode(),
            }
        ],
    }

    sent = graph.post("me/sendMail", json={"message": message})
    nobody = graph.post("me/sendMail", json={"message": {"subject": "to nobody"}})

    assert sent.status_code == 202
    assert nobody.status_code == 400
    [copy] = served.emulator.store.messages(
        mailbox.oid, served.emulator.folder(mailbox.oid, "sentitems").id
    )
    assert copy.content.subject == "Report"
    assert [r.address for r in copy.content.bcc] == ["outside@example.com"]
    [received] = served.emulator.store.messages(colleague.oid)
    assert received.content.sender is not None
    assert received.content.sender.address == mailbox.address
    assert received.content.attachments[0].content == b"numbers"


def test_drafts_are_created_and_sent(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    draft = graph.post(
        "me/messages",
        json={"subject": "Draft", "toRecipients": [{"emailAddress": {"address": "x@example.com"}}]},
    ).json()
    assert draft["isDraft"] is True
    assert draft["parentFolderId"] == served.emulator.folder(mailbox.oid, "drafts").id

    assert graph.post(f"me/messages/{draft['id']}/send").status_code == 202

    assert graph.get(f"me/messages/{draft['id']}").status_code == 404
    sent = graph.get("me/mailFolders/sentitems/messages").json()["value"]
    assert [(m["subject"], m["isDraft"]) for m in sent] == [("Draft", False)]
