"""Parse raw RFC 822 bytes into what Gmail exposes: the MIME tree, headers, snippet, thread keys.

Gmail numbers parts like this: the message itself is part ``""``, its children ``"0"``, ``"1"``,
their children ``"1.0"``, ``"1.1"`` and so on. Header values are returned decoded (RFC 2047) and
unfolded. A part with a file name is an attachment: its bytes are fetched separately by
``attachmentId``. Bodies are the transfer-decoded bytes in the part's own charset.

Mail in the wild is often broken, and Gmail still serves it; so does this module: it never raises
on bad input, it degrades (undecodable header bytes become U+FFFD, a multipart without boundaries
becomes a leaf, a cut-off part keeps the bytes that arrived).
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

SNIPPET_LENGTH = 200

# compat32: the modern policy parses every structured header eagerly and is ~10x slower, which
# matters when tests load mailboxes of thousands of messages.
_PARSER = BytesParser(policy=policy.compat32)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MimePart:
    """One node of Gmail's ``payload`` tree."""

    part_id: str
    mime_type: str
    filename: str
    headers: Headers
    body: bytes
    parts: tuple[MimePart, ...]

    def walk(self) -> Iterator[MimePart]:
        """This part and all below it, depth first."""
        yield self
        for child in self.parts:
            yield from child.walk()

    def find(self, part_id: str) -> MimePart | None:
        """The part with ``part_id`` in this subtree, if any."""
        return next((part for part in self.walk() if part.part_id == part_id), None)


@dataclass(frozen=True)
class ParsedMessage:
    """What Gmail derives from a message's bytes once, at delivery."""

    payload: MimePart
    snippet: str
    message_id: str | None
    references: tuple[str, ...]
    subject: str
    date_ms: int | None
    recipients: tuple[str, ...]

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.payload.headers if k.lower() == wanted), None)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw``; never raises on malformed mail."""
    msg = _PARSER.parsebytes(raw)
    payload = _part(msg, "")
    headers = {k.lower(): v for k, v in reversed(payload.headers)}
    # In-Reply-To first: it names the direct parent, the likeliest thread to join.
    refs = _MESSAGE_ID.findall(headers.get("in-reply-to", ""))
    refs += reversed(_MESSAGE_ID.findall(headers.get("references", "")))
    message_ids = _MESSAGE_ID.findall(headers.get("message-id", ""))
    return ParsedMessage(
        payload=payload,
        snippet=_snippet(payload),
        message_id=message_ids[0] if message_ids else None,
        references=tuple(dict.fromkeys(refs)),
        subject=headers.get("subject", ""),
        date_ms=_date_ms(headers.get("date")),
        recipients=_recipients(headers),
    )


def _part(msg: Message, part_id: str) -> MimePart:
    headers = tuple((name, _decoded(value)) for name, value in msg.raw_items())
    children = msg.get_payload() if msg.is_multipart() else None
    mime_type = msg.get_content_type()
    if isinstance(children, list) and mime_type != "message/rfc822":
        prefix = f"{part_id}." if part_id else ""
        parts = tuple(_part(child, f"{prefix}{i}") for i, child in enumerate(children))
        return MimePart(part_id, mime_type, "", headers, b"", parts)
    return MimePart(part_id, mime_type, _filename(msg), headers, _body(msg), ())


def _decoded(raw_value: str) -> str:
    """An unfolded header value with its RFC 2047 encoded words decoded."""
    value = _SPACE.sub(" ", raw_value).strip()
    # A header the stdlib cannot decode is served as it came.
    with contextlib.suppress(Exception):
        value = str(make_header(decode_header(value)))
    return _clean(value)


def _clean(text: str) -> str:
    # The parser keeps undecodable bytes as surrogates; JSON cannot carry them.
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _filename(msg: Message) -> str:
    try:
        name = msg.get_filename()
    except Exception:  # a broken RFC 2231 name is no name
        return ""
    # RFC 2231 is decoded by the stdlib; some mailers put RFC 2047 words in names instead.
    return _decoded(name) if isinstance(name, str) else ""


def _body(msg: Message) -> bytes:
    if msg.get_content_type() == "message/rfc822":
        inner = msg.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=policy.compat32)
        return b""
    try:
        data = msg.get_payload(decode=True)
    except Exception:  # undecodable content is served as empty
        return b""
    return data if isinstance(data, bytes) else b""


def _text_of(part: MimePart) -> str:
    params = {
        k.strip().lower(): v.strip().strip('"')
        for header, value in part.headers
        if header.lower() == "content-type"
        for k, _, v in (p.partition("=") for p in value.split(";")[1:])
    }
    try:
        return part.body.decode(params.get("charset", "utf-8"), "replace")
    except LookupError:
        return part.body.decode("utf-8", "replace")


def _snippet(payload: MimePart) -> str:
    leaves = [part for part in payload.walk() if not part.parts]
    plain = next((p for p in leaves if p.mime_type == "text/plain" and not p.filename), None)
    rich = next((p for p in leaves if p.mime_type == "text/html" and not p.filename), None)
    if plain is not None:
        text = _text_of(plain)
    elif rich is not None:
        text = html.unescape(_TAG.sub(" ", _text_of(rich)))
    else:
        return ""
    short = _SPACE.sub(" ", text).strip()[:SNIPPET_LENGTH]
    # Gmail snippets are HTML-escaped, with the apostrophe as a decimal reference.
    return html.escape(short).replace("&#x27;", "&#39;")


def _date_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def _recipients(headers: dict[str, str]) -> tuple[str, ...]:
    values = [headers.get(name, "") for name in ("to", "cc", "bcc")]
    return tuple(address.lower() for _, address in getaddresses(values) if "@" in address)
