"""Graph message resources (sendMail and draft bodies) turned into RFC 822 bytes.

Validates what Graph validates on the way in (recipient shape, importance, fileAttachment with
base64 contentBytes) and raises the same `GraphError`s; the bytes then go through the store like
any delivered message. A PATCH of a draft's subject, body or recipients rebuilds its MIME from
its current content (`draft_mime_with_changes`); Graph refuses those properties on a message
that is no draft.
"""

from __future__ import annotations

import base64
import binascii

from emulators.graph_errors import GraphError, invalid_request
from emulators.graph_mime import Attachment, ParsedMessage, Recipient, build_mime
from emulators.graph_types import JSONObject

IMPORTANCES = ("low", "normal", "high")


def _recipients(value: object, field: str) -> list[Recipient]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request(f"'{field}' must be a collection of recipients.")
    recipients = []
    for item in value:
        address = item.get("emailAddress", {}) if isinstance(item, dict) else {}
        if not isinstance(address, dict) or "@" not in str(address.get("address", "")):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        recipients.append(Recipient(str(address.get("name", "")), str(address["address"])))
    return recipients


def _attachments(value: object) -> list[Attachment]:
    attachments = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or item.get("@odata.type") not in (
            "#microsoft.graph.fileAttachment",
            "microsoft.graph.fileAttachment",
        ):
            raise invalid_request("Only fileAttachment attachments are supported.")
        try:
            content = base64.b64decode(str(item.get("contentBytes", "")), validate=True)
        except binascii.Error:
            raise invalid_request("contentBytes is not valid base64.") from None
        attachments.append(
            Attachment(
                name=str(item.get("name", "attachment")),
                content_type=str(item.get("contentType") or "application/octet-stream"),
                content=content,
                is_inline=bool(item.get("isInline", False)),
                content_id=item.get("contentId"),
            )
        )
    return attachments


def mime_from_graph_message(message: JSONObject, sender: Recipient) -> bytes:
    """The RFC 822 form of a Graph message resource (sendMail, draft creation)."""
    body = message.get("body") or {}
    content = str(body.get("content", "")) if isinstance(body, dict) else ""
    is_html = isinstance(body, dict) and str(body.get("contentType", "text")).lower() == "html"
    importance = str(message.get("importance", "normal")).lower()
    if importance not in IMPORTANCES:
        raise invalid_request(f"Invalid importance '{importance}'.")
    return build_mime(
        subject=str(message.get("subject", "")),
        sender=sender,
        to=_recipients(message.get("toRecipients"), "toRecipients"),
        cc=_recipients(message.get("ccRecipients"), "ccRecipients"),
        bcc=_recipients(message.get("bccRecipients"), "bccRecipients"),
        reply_to=_recipients(message.get("replyTo"), "replyTo"),
        text=None if is_html else content,
        html=content if is_html else None,
        attachments=_attachments(message.get("attachments")),
        importance=importance,
    )


DRAFT_PROPERTIES = ("subject", "body", "toRecipients", "ccRecipients", "bccRecipients", "replyTo")


def draft_mime_with_changes(
    content: ParsedMessage, changes: JSONObject, sender: Recipient
) -> bytes:
    """The MIME of a draft whose ``DRAFT_PROPERTIES`` in ``changes`` replace its current ones
    (attachments, Message-ID, In-Reply-To and References kept)."""
    text, html = content.text_body, content.html_body
    body = changes.get("body")
    if isinstance(body, dict):
        given = str(body.get("content", ""))
        is_html = str(body.get("contentType", "text")).lower() == "html"
        text, html = (None, given) if is_html else (given, None)

    def recipients(name: str, current: tuple[Recipient, ...]) -> list[Recipient]:
        return _recipients(changes[name], name) if name in changes else list(current)

    return build_mime(
        subject=str(changes.get("subject", content.subject)),
        sender=content.sender or sender,
        to=recipients("toRecipients", content.to),
        cc=recipients("ccRecipients", content.cc),
        bcc=recipients("bccRecipients", content.bcc),
        reply_to=recipients("replyTo", content.reply_to),
        text=text,
        html=html,
        attachments=content.attachments,
        message_id=content.internet_message_id,
        in_reply_to=content.in_reply_to,
        references=content.references,
        importance=content.importance,
    )
