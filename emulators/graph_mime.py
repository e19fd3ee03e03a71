"""RFC 822 messages in and out of the Graph emulator's mailbox.

Every stored message keeps its MIME bytes (what `$value` returns); the Graph properties (subject,
recipients, body, attachments, internetMessageId...) are read from those bytes by `parse_mime`, so
a message delivered as MIME and one created from fields are the same thing. `build_mime` turns
fields (a test's, or a `sendMail` body's) into MIME. Standard library only.
"""

from __future__ import annotations

import email
import email.encoders
import email.errors
import email.header
import email.utils
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText


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


def _text(value: object) -> str:
    """A header value with RFC 2047 encoded words decoded."""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (UnicodeError, LookupError, email.errors.HeaderParseError):
        return str(value)


def _recipients(message: Message, header: str) -> tuple[Recipient, ...]:
    values = [str(v) for v in message.get_all(header) or []]
    return tuple(
        Recipient(_text(name), address)
        for name, address in email.utils.getaddresses(values)
        if address
    )


def _importance(message: Message) -> str:
    value = str(message.get("Importance", "")).strip().lower()
    if value in ("high", "low"):
        return value
    priority = str(message.get("X-Priority", "")).strip()[:1]
    return {"1": "high", "2": "high", "4": "low", "5": "low"}.get(priority, "normal")


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _decoded_text(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return _payload(part).decode(charset, "replace")
    except LookupError:
        return _payload(part).decode("utf-8", "replace")


def parse_mime(raw: bytes) -> ParsedMessage:
    """Read Graph's message properties from RFC 822 bytes (tolerant of sloppy messages).

    The compat32 parser is used on purpose: it is several times faster than `policy.default`,
    and delivering thousands of messages must stay cheap.
    """
    message = email.message_from_bytes(raw)
    text_body: str | None = None
    html_body: str | None = None
    attachments = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename()
        is_body = filename is None and part.get_content_disposition() != "attachment"
        if is_body and content_type == "text/plain" and text_body is None:
            text_body = _decoded_text(part)
        elif is_body and content_type == "text/html" and html_body is None:
            html_body = _decoded_text(part)
        else:
            content_id = part.get("Content-ID")
            attachments.append(
                Attachment(
                    name=_text(filename) if filename else "attachment",
                    content_type=content_type,
                    content=_payload(part),
                    is_inline=part.get_content_disposition() == "inline" or content_id is not None,
                    content_id=str(content_id).strip().strip("<>") if content_id else None,
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
        subject=_text(message.get("Subject", "")),
        sender=senders[0] if senders else None,
        to=_recipients(message, "To"),
        cc=_recipients(message, "Cc"),
        bcc=_recipients(message, "Bcc"),
        reply_to=_recipients(message, "Reply-To"),
        sent_at=sent_at,
        internet_message_id=str(message_id).strip() if message_id else None,
        in_reply_to=str(in_reply_to).strip() if in_reply_to else None,
        references=tuple(str(message.get("References", "")).split()),
        text_body=text_body,
        html_body=html_body,
        attachments=tuple(attachments),
        importance=_importance(message),
    )


def _address_list(recipients: Iterable[Recipient]) -> str:
    return ", ".join(email.utils.formataddr((r.name, r.address), "utf-8") for r in recipients)


def _body_part(text: str | None, html: str | None) -> Message:
    if html is None:
        return MIMEText(text or "", "plain", "utf-8")
    if text is None:
        return MIMEText(html, "html", "utf-8")
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText(text, "plain", "utf-8"))
    alternative.attach(MIMEText(html, "html", "utf-8"))
    return alternative


def _attachment_part(attachment: Attachment) -> Message:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(attachment.content)
    email.encoders.encode_base64(part)
    disposition = "inline" if attachment.is_inline else "attachment"
    part.add_header("Content-Disposition", disposition, filename=attachment.name)
    if attachment.content_id:
        part["Content-ID"] = f"<{attachment.content_id}>"
    return part


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
    files = list(attachments)
    message = _body_part(text, html)
    if files:
        mixed = MIMEMultipart("mixed")
        mixed.attach(message)
        for attachment in files:
            mixed.attach(_attachment_part(attachment))
        message = mixed
    message["Subject"] = (
        subject if subject.isascii() else email.header.Header(subject, "utf-8").encode()
    )
    message["From"] = _address_list([sender])
    for header, recipients in (("To", to), ("Cc", cc), ("Bcc", bcc), ("Reply-To", reply_to)):
        addresses = _address_list(recipients)
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
    return message.as_bytes()
