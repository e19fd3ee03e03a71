"""Graph message resources (sendMail and draft bodies) turned into RFC 822 bytes.

Validates what Graph validates on the way in (recipient shape, importance, fileAttachment with
base64 contentBytes) and raises the same `GraphError`s; the bytes then go through the store like
any delivered message.
"""

from __future__ import annotations

import base64
import binascii

from emulators.graph_errors import GraphError, invalid_request
from emulators.graph_mime import Attachment, Recipient, build_mime
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
