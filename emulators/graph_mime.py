"""RFC 822 messages in and out of the Graph emulator's mailbox.

Every stored message keeps its MIME bytes (what `$value` returns); the Graph properties (subject,
recipients, body, attachments, internetMessageId...) are read from those bytes by `parse_mime`, so
a message delivered as MIME and one created from fields are the same thing. `build_mime` turns
fields (a test's, or a `sendMail` body's) into MIME. Standard library only.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message


@dataclass(frozen=True)
class Recipient:
    name: str
    address: str


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class ParsedMessage:
    """The parts of an RFC 822 message that Graph exposes as properties."""

    subject: str
    sender: Recipient | None
    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    bcc: tuple[Recipient, ...]
    reply_to: tuple[Recipient, ...]
    sent_at: datetime | None
    internet_message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text_body: str | None
    html_body: str | None
    attachments: tuple[Attachment, ...]
    importance: str


def _recipients(message: Message, header: str) -> tuple[Recipient, ...]:
    values = message.get_all(header) or []
    return tuple(
        Recipient(name, address)
        for name, address in email.utils.getaddresses([str(v) for v in values])
        if address
    )


def _importance(message: Message) -> str:
    value = str(message.get("Importance", "")).strip().lower()
    if value in ("high", "low"):
        return value
    priority = str(message.get("X-Priority", "")).strip()[:1]
    return {"1": "high", "2": "high", "4": "low", "5": "low"}.get(priority, "normal")


def _decoded_text(part: EmailMessage) -> str:
    content = part.get_content()
    return content if isinstance(content, str) else bytes(content).decode("utf-8", "replace")


def parse_mime(raw: bytes) -> ParsedMessage:
    """Read Graph's message properties from RFC 822 bytes (tolerant of sloppy messages)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments = []
    for part in message.walk():
        if part.is_multipart() or part is text_part or part is html_part:
            continue
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        content_id = part.get("Content-ID")
        attachments.append(
            Attachment(
                name=part.get_filename() or "attachment",
                content_type=part.get_content_type(),
                content=payload if isinstance(payload, bytes) else b"",
                is_inline=part.get_content_disposition() == "inline" or content_id is not None,
                content_id=str(content_id).strip("<>") if content_id else None,
            )
        )
    date = message.get("Date")
    try:
        sent_at = email.utils.parsedate_to_datetime(str(date)) if date else None
    except (TypeError, ValueError):
        sent_at = None
    if sent_at is not None and sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    senders = _recipients(message, "From")
    message_id = message.get("Message-ID")
    in_reply_to = message.get("In-Reply-To")
    return ParsedMessage(
        subject=str(message.get("Subject", "")),
        sender=senders[0] if senders else None,
        to=_recipients(message, "To"),
        cc=_recipients(message, "Cc"),
        bcc=_recipients(message, "Bcc"),
        reply_to=_recipients(message, "Reply-To"),
        sent_at=sent_at,
        internet_message_id=str(message_id).strip() if message_id else None,
        in_reply_to=str(in_reply_to).strip() if in_reply_to else None,
        references=tuple(str(message.get("References", "")).split()),
        text_body=_decoded_text(text_part) if isinstance(text_part, EmailMessage) else None,
        html_body=_decoded_text(html_part) if isinstance(html_part, EmailMessage) else None,
        attachments=tuple(attachments),
        importance=_importance(message),
    )


def _address_header(recipients: Iterable[Recipient]) -> list[Address]:
    return [Address(display_name=r.name, addr_spec=r.address) for r in recipients]


def build_mime(
    *,
    subject: str,
    sender: Recipient,
    to: Iterable[Recipient] = (),
    cc: Iterable[Recipient] = (),
    bcc: Iterable[Recipient] = (),
    reply_to: Iterable[Recipient] = (),
    text: str | None = None,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    date: datetime | None = None,
    importance: str = "normal",
) -> bytes:
    """Compose an RFC 822 message from Graph-style fields."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = _address_header([sender])
    for header, recipients in (("To", to), ("Cc", cc), ("Bcc", bcc), ("Reply-To", reply_to)):
        addresses = _address_header(recipients)
        if addresses:
            message[header] = addresses
    message["Date"] = email.utils.format_datetime(date or datetime.now(UTC))
    domain = sender.address.rpartition("@")[2] or "emulator.local"
    message["Message-ID"] = message_id or email.utils.make_msgid(domain=domain)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    reference_list = list(references)
    if reference_list:
        message["References"] = " ".join(reference_list)
    if importance != "normal":
        message["Importance"] = importance
    message.set_content(text if text is not None else "")
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.name,
            disposition="inline" if attachment.is_inline else "attachment",
            cid=f"<{attachment.content_id}>" if attachment.content_id else None,
        )
    return bytes(message)
