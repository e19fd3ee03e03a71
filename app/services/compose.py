"""Outgoing mail, checked strictly and built as MIME before anything reaches a provider.

Every header value (subject, display names, addresses) is refused when it holds CR, LF or NUL
(header injection), addresses are parsed as one RFC 5322 addr-spec each with
``email.headerregistry.Address`` and must have a dotted or ``localhost`` domain, and sizes and
recipient counts are bounded. A refusal is ``InvalidInput`` naming the field (``to[2].email``,
``subject``...). A reply takes In-Reply-To and References from the cached original, so the
provider files the answer in the same thread.

Attachments (``AttachmentPart``) become ``attachment`` parts of a ``multipart/mixed`` message:
a filename is a header value too (no CR/LF, no path separator, not ``.``/``..``), a content type
is one ``type/subtype`` token pair. Their sizes are bounded by the caller
(``app.services.drafts_attachments``), and the whole message by ``check_message_size``
(``TooLarge``, code ``PAYLOAD_TOO_LARGE``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from app.services.errors import InvalidInput

MAX_RECIPIENTS = 100
MAX_SUBJECT_CHARS = 998
MAX_NAME_CHARS = 200
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_FILENAME_CHARS = 255
_FORBIDDEN = ("\r", "\n", "\x00")
_CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)


class TooLarge(InvalidInput):
    """Over a size or count limit (attachments, the whole message)."""

    code = "PAYLOAD_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """One file to attach, its bytes already decoded (or fetched)."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Draft:
    """What the caller wants sent (or saved as a draft)."""

    to: Sequence[Recipient] = ()
    cc: Sequence[Recipient] = ()
    bcc: Sequence[Recipient] = ()
    subject: str = ""
    text_body: str | None = None
    html_body: str | None = None
    attachments: Sequence[AttachmentPart] = ()


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """The cached original a reply answers."""

    message_id_header: str | None
    references: Sequence[str]


def header_value(value: str, field: str, limit: int) -> str:
    """``value`` when it may stand in a header; ``InvalidInput`` naming ``field`` if not."""
    if any(char in value for char in _FORBIDDEN):
        raise InvalidInput("line breaks are not allowed in a header value", field=field)
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters", field=field)
    return value


def parse_address(recipient: Recipient, field: str) -> Address:
    """One strict address: a single addr-spec with a proper domain, a safe display name."""
    name = header_value(recipient.name, f"{field}.name", MAX_NAME_CHARS)
    spec = header_value(recipient.email.strip(), f"{field}.email", 320)
    try:
        address = Address(display_name=name, addr_spec=spec)
    except (ValueError, HeaderParseError):
        raise InvalidInput("not a valid email address", field=f"{field}.email") from None
    domain = address.domain
    if (
        not address.username
        or address.addr_spec != spec
        or not (domain == "localhost" or ("." in domain and not domain.endswith(".")))
    ):
        raise InvalidInput("not a valid email address", field=f"{field}.email")
    return address


def attachment_filename(filename: str, field: str) -> str:
    """``filename`` when it is safe in a Content-Disposition header and names no path."""
    name = header_value(filename, field, MAX_FILENAME_CHARS)
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidInput("a file name without path separators", field=field)
    if not name.isprintable():
        raise InvalidInput("control characters are not allowed in a file name", field=field)
    return name


def attachment_content_type(content_type: str, field: str) -> tuple[str, str]:
    """(maintype, subtype) of a ``type/subtype`` content type, lower-cased. ``multipart/*`` and
    ``message/*`` are refused: their bytes cannot be carried base64-encoded (RFC 2046)."""
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidInput("a content type such as application/pdf", field=field)
    maintype, _, subtype = content_type.lower().partition("/")
    if maintype in ("multipart", "message"):
        raise InvalidInput("multipart and message types cannot be attached", field=field)
    return maintype, subtype


def check_message_size(raw: bytes, limit: int) -> bytes:
    """``raw`` when the whole message fits ``limit`` bytes; ``TooLarge`` if not."""
    if len(raw) > limit:
        raise TooLarge(
            f"the message would be {len(raw)} bytes, over the limit of {limit}",
            field="attachments",
        )
    return raw


def build_mime(
    sender: Recipient,
    draft: Draft,
    *,
    reply_to: ReplyTo | None = None,
    domain: str = "inbox-api",
    require_recipient: bool = True,
) -> tuple[bytes, str]:
    """The MIME of ``draft`` from ``sender`` and its Message-ID; ``InvalidInput`` on bad input.
    A draft being saved may lack recipients and a body (``require_recipient=False``)."""
    lists = {"to": draft.to, "cc": draft.cc, "bcc": draft.bcc}
    if require_recipient and not any(lists.values()):
        raise InvalidInput("name at least one recipient", field="to")
    if sum(len(values) for values in lists.values()) > MAX_RECIPIENTS:
        raise InvalidInput(f"at most {MAX_RECIPIENTS} recipients in all", field="to")
    parsed = {
        name: [parse_address(r, f"{name}[{i}]") for i, r in enumerate(values)]
        for name, values in lists.items()
    }
    subject = header_value(draft.subject, "subject", MAX_SUBJECT_CHARS)
    if require_recipient and draft.text_body is None and draft.html_body is None:
        raise InvalidInput("give a text or an HTML body", field="textBody")
    for field, body in (("textBody", draft.text_body), ("htmlBody", draft.html_body)):
        if body is not None and len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise InvalidInput(f"at most {MAX_BODY_BYTES} bytes", field=field)
    message = EmailMessage(policy=SMTP)
    message["From"] = parse_address(sender, "from")
    for name, header in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
        if parsed[name]:
            message[header] = parsed[name]
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message_id = make_msgid(domain=domain)
    message["Message-ID"] = message_id
    if reply_to is not None and reply_to.message_id_header:
        original = header_value(reply_to.message_id_header, "inReplyTo", 998)
        references = [
            header_value(ref, "inReplyTo", 998) for ref in reply_to.references if ref.strip()
        ]
        message["In-Reply-To"] = original
        message["References"] = " ".join([*references[-20:], original])
    if draft.html_body is None:
        message.set_content(draft.text_body or "")
    elif draft.text_body is None:
        message.set_content(draft.html_body, subtype="html")
    else:
        message.set_content(draft.text_body)
        message.add_alternative(draft.html_body, subtype="html")
    for index, part in enumerate(draft.attachments):
        field = f"attachments[{index}]"
        filename = attachment_filename(part.filename, f"{field}.filename")
        maintype, subtype = attachment_content_type(part.content_type, f"{field}.contentType")
        message.add_attachment(part.content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(), message_id
