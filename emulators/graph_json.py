"""Graph's JSON for messages, folders and attachments, with `$select` as Graph applies it.

Rendering reads frozen store records and never changes them. `$select` names are checked
against the resource's properties: an unknown one is a 400, as on Graph. `id` always comes back.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emulators.graph_errors import GraphError, item_not_found
from emulators.graph_mime import Attachment, Recipient
from emulators.graph_store import FolderCounts, MailFolder, MailMessage
from emulators.graph_types import IdType, JSONObject


@dataclass(frozen=True)
class RenderOptions:
    """Per-request rendering choices that come from Prefer headers."""

    id_type: IdType = IdType.REST
    body_type: str | None = None
    """"text" or "html" from `Prefer: outlook.body-content-type`; None keeps the stored type."""


def graph_datetime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _recipient(recipient: Recipient) -> JSONObject:
    return {
        "emailAddress": {"name": recipient.name or recipient.address, "address": recipient.address}
    }


def _recipients(recipients: Sequence[Recipient]) -> list[JSONObject]:
    return [_recipient(r) for r in recipients]


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _html_to_text(markup: str) -> str:
    without_head = re.sub(r"(?is)<(head|style|script)\b.*?</\1>", " ", markup)
    return html.unescape(_TAG.sub(" ", without_head))


def _body(message: MailMessage, options: RenderOptions) -> JSONObject:
    text, markup = message.content.text_body, message.content.html_body
    wanted = options.body_type or ("html" if markup is not None else "text")
    if wanted == "html":
        content = (
            markup
            if markup is not None
            else f"<html><body><pre>{html.escape(text or '')}</pre></body></html>"
        )
        return {"contentType": "html", "content": content}
    return {"contentType": "text", "content": _plain_text(message)}


def _plain_text(message: MailMessage) -> str:
    """The text part, or the HTML part stripped of tags when there is no real text part."""
    text = message.content.text_body or ""
    if text.strip() or message.content.html_body is None:
        return text
    return _html_to_text(message.content.html_body)


def _preview(message: MailMessage) -> str:
    return _SPACE.sub(" ", _plain_text(message)).strip()[:255]


def change_key(message: MailMessage) -> str:
    return base64.b64encode(f"CQAAABYAAAA{message.changed_seq:012d}".encode()).decode()


def _has_attachments(message: MailMessage) -> bool:
    return any(not a.is_inline for a in message.content.attachments)


Property = Callable[[MailMessage, RenderOptions], Any]

MESSAGE_PROPERTIES: dict[str, Property] = {
    "@odata.etag": lambda m, o: f'W/"{change_key(m)}"',
    "id": lambda m, o: m.id_for(o.id_type),
    "createdDateTime": lambda m, o: graph_datetime(m.created_at),
    "lastModifiedDateTime": lambda m, o: graph_datetime(m.modified_at),
    "changeKey": lambda m, o: change_key(m),
    "categories": lambda m, o: list(m.categories),
    "receivedDateTime": lambda m, o: graph_datetime(m.received_at),
    "sentDateTime": lambda m, o: graph_datetime(m.content.sent_at or m.received_at),
    "hasAttachments": lambda m, o: _has_attachments(m),
    "internetMessageId": lambda m, o: m.internet_message_id,
    "subject": lambda m, o: m.content.subject,
    "bodyPreview": lambda m, o: _preview(m),
    "importance": lambda m, o: m.importance,
    "parentFolderId": lambda m, o: m.folder_id,
    "conversationId": lambda m, o: m.conversation_id,
    "isDeliveryReceiptRequested": lambda m, o: False,
    "isReadReceiptRequested": lambda m, o: False,
    "isRead": lambda m, o: m.is_read,
    "isDraft": lambda m, o: m.is_draft,
    "webLink": lambda m, o: (
        f"https://outlook.office365.com/owa/?ItemID={m.rest_id}&exvsurl=1&viewmodel=ReadMessageItem"
    ),
    "inferenceClassification": lambda m, o: "focused",
    "body": _body,
    "sender": lambda m, o: _recipient(m.content.sender) if m.content.sender else None,
    "from": lambda m, o: _recipient(m.content.sender) if m.content.sender else None,
    "toRecipients": lambda m, o: _recipients(m.content.to),
    "ccRecipients": lambda m, o: _recipients(m.content.cc),
    "bccRecipients": lambda m, o: _recipients(m.content.bcc),
    "replyTo": lambda m, o: _recipients(m.content.reply_to),
    "flag": lambda m, o: {"flagStatus": m.flag_status},
}
SELECTABLE_MESSAGE_PROPERTIES = frozenset(MESSAGE_PROPERTIES) - {"@odata.etag"}

SELECTABLE_FOLDER_PROPERTIES = frozenset(
    {"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount"}
    | {"totalItemCount", "isHidden"}
)


def parse_select(
    value: str | None, allowed: frozenset[str], type_name: str
) -> tuple[str, ...] | None:
    """Validate a `$select` value; None means "the default properties"."""
    if not value:
        return None
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if name not in allowed:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
    return names


def message_json(
    message: MailMessage, options: RenderOptions, select: Sequence[str] | None = None
) -> JSONObject:
    names = MESSAGE_PROPERTIES if select is None else ["@odata.etag", "id", *select]
    return {name: MESSAGE_PROPERTIES[name](message, options) for name in dict.fromkeys(names)}


def folder_json(
    folder: MailFolder, counts: FolderCounts, select: Sequence[str] | None = None
) -> JSONObject:
    full: JSONObject = {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": counts.children,
        "unreadItemCount": counts.unread,
        "totalItemCount": counts.total,
        "isHidden": False,
    }
    if select is None:
        return full
    return {name: full[name] for name in dict.fromkeys(["id", *select])}


def removed_json(item_id: str, reason: str) -> JSONObject:
    return {"id": item_id, "@removed": {"reason": reason}}


def attachment_id(message: MailMessage, index: int) -> str:
    raw = f"{message.immutable_id}\x00{index}".encode()
    return base64.urlsafe_b64encode(b"\x01\x00" + raw).decode()


def find_attachment(message: MailMessage, attachment_ref: str) -> tuple[str, Attachment]:
    for index, attachment in enumerate(message.content.attachments):
        if attachment_id(message, index) == attachment_ref:
            return attachment_ref, attachment
    raise item_not_found()


def attachment_json(
    message: MailMessage, attachment_ref: str, attachment: Attachment, with_content: bool = True
) -> JSONObject:
    body: JSONObject = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": attachment.content_type,
        "id": attachment_ref,
        "lastModifiedDateTime": graph_datetime(message.modified_at),
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": len(attachment.content),
        "isInline": attachment.is_inline,
        "contentId": attachment.content_id,
        "contentLocation": None,
    }
    if with_content:
        body["contentBytes"] = base64.b64encode(attachment.content).decode("ascii")
    return body


def attachments_json(message: MailMessage) -> list[JSONObject]:
    return [
        attachment_json(message, attachment_id(message, index), attachment)
        for index, attachment in enumerate(message.content.attachments)
    ]
