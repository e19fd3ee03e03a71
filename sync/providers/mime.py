"""RFC 822 bytes -> envelope, bodies, headers and attachment metadata; shared by every provider.

Gmail (``format=raw``) and IMAP (``BODY[]``) hand us the same thing, a message as bytes, and this
module turns it into plain values: ``parse_message(raw)`` and, for one part's bytes,
``extract_attachment(raw, part_id)``. ``parse_envelope(headers)`` reads the same fields from a
list of header pairs (Gmail ``format=metadata``), so both paths agree on every field.

Mail in the wild is broken, and the sync must not stop on it. Nothing here raises on bad input:
a field that cannot be read is left empty and ``parse_error`` names what went wrong in a few
words (defect class names, never message content). Text falls back from the declared charset to
UTF-8, Windows-1252 and finally Latin-1 (which cannot fail); NUL characters, which PostgreSQL
text cannot hold, become U+FFFD.

How it parses: the MIME structure with the stdlib ``email`` parser under ``policy.compat32``, and
the structured headers (addresses, subject) with ``policy.default``'s header registry. Parsing
whole messages under ``policy.default`` re-parses Content-Type at every feed-parser step and is
about four times slower for the same fields (``make_mailbox(1, 300)``: ~7 ms against ~1.7 ms of
CPU per message on a busy two-core test machine).

Part ids follow Gmail's numbering: the message is ``""``, its children ``"0"``, ``"1"``, theirs
``"1.0"`` and so on; ``extract_attachment`` walks the same way, so ids round-trip.

This module does no I/O and never logs. The one thing it keeps between calls is a bounded cache
of the header registry's readings of address and subject values and of decoded header values
(``_registry_reading``, ``_decoded_words``: pure functions of the value, so the caches change
no result, only the time).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from sync.providers.records import Address, AttachmentRecord

SNIPPET_LENGTH = 200
MAX_DEPTH = 32  # deeper MIME nesting is hostile, not mail
MAX_PARTS = 1000  # leaf parts read from one message; more is hostile too

_PARSER = BytesParser(policy=policy.compat32)
_FOLD = re.compile(r"\r\n|\r|\n")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_TAG_NAME = re.compile(r"[a-z0-9]+")
_HIDDEN_ELEMENTS = frozenset({"head", "script", "style", "title"})
_ADDRESS_HEADERS = ("from", "to", "cc", "bcc", "reply-to")
_FALLBACK_CHARSETS = ("utf-8", "windows-1252", "latin-1")
# The stdlib's header decoders take time that grows faster than the input (2,000 quote marks in
# a From: 0.8 s; 20,000 encoded words in a Subject: 40 s). Address lists longer than this go
# through the simpler compat32 splitter; longer values are not decoded (or are cut, for Subject).
_REGISTRY_MAX_LENGTH = 1024
_DECODE_MAX_LENGTH = 2048
_MAX_TAGS = 5000  # markup scanned for a snippet before giving up
# Header values whose registry reading is kept (each at most _REGISTRY_MAX_LENGTH or
# _DECODE_MAX_LENGTH characters: a few MB at most, per process).
REGISTRY_CACHE_SIZE = 4096
# HeaderRegistry builds a fresh class on every lookup (0.1 ms); look each one up once.
_HEADER_CLASSES = {name: HeaderRegistry()[name] for name in ("subject", *_ADDRESS_HEADERS)}


@dataclass(frozen=True, slots=True)
class Envelope:
    """The header fields a mail client shows and threads by, decoded."""

    subject: str = ""
    date: datetime | None = None
    from_addresses: tuple[Address, ...] = ()
    to_addresses: tuple[Address, ...] = ()
    cc_addresses: tuple[Address, ...] = ()
    bcc_addresses: tuple[Address, ...] = ()
    reply_to_addresses: tuple[Address, ...] = ()
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything ``parse_message`` could read; ``parse_error`` says what it could not."""

    envelope: Envelope
    text_body: str | None = None
    html_body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[AttachmentRecord, ...] = ()
    snippet: str = ""
    parse_error: str | None = None


@dataclass
class _Problems:
    """Short, content-free names of what went wrong, in order, without repeats."""

    names: dict[str, None] = field(default_factory=dict)
    # Header values a provider already decoded are no longer RFC 5322: their "defects" say
    # nothing about the message, so they are not reported.
    header_defects: bool = True

    def add(self, name: str) -> None:
        self.names[name] = None

    def add_defects(self, defects: Iterable[object]) -> None:
        for defect in defects:
            self.add(type(defect).__name__)

    def add_header_defects(self, defects: Iterable[object]) -> None:
        if self.header_defects:
            self.add_defects(defects)

    def summary(self) -> str | None:
        if not self.names:
            return None
        text = ", ".join(self.names)
        return text if len(text) <= 200 else text[:197] + "..."


def parse_message(raw: bytes, *, fallback_date: datetime | None = None) -> ParsedMessage:
    """Parse ``raw``; ``fallback_date`` (e.g. Gmail's internalDate) stands in for a missing or
    unreadable Date. Never raises on malformed mail."""
    problems = _Problems()
    try:
        message = _PARSER.parsebytes(raw)
        whole = True
    except Exception as exc:  # e.g. RecursionError on thousands of nested multiparts
        problems.add(f"unparseable ({type(exc).__name__})")
        try:
            message, whole = _PARSER.parsebytes(raw, headersonly=True), False
        except Exception:  # not even a header block: nothing to read
            return ParsedMessage(Envelope(date=fallback_date), parse_error=problems.summary())
    fields = tuple((name, _header_text(value)) for name, value in _raw_items(message, problems))
    envelope = _envelope(fields, fallback_date, problems)
    text_body = html_body = None
    attachments: list[AttachmentRecord] = []
    try:
        for part_id, part in _leaves(message, problems) if whole else ():
            if not _is_body(part):
                attachments.append(_attachment(part_id, part, problems))
            elif part.get_content_type() == "text/html":
                html_body = html_body if html_body is not None else _text_of(part, problems)
            else:
                text_body = text_body if text_body is not None else _text_of(part, problems)
    except Exception as exc:  # a structure the parser accepted but that cannot be walked
        problems.add(f"structure unreadable ({type(exc).__name__})")
    return ParsedMessage(
        envelope=envelope,
        text_body=text_body,
        html_body=html_body,
        headers=tuple((name, _display(value)) for name, value in fields),
        attachments=tuple(attachments),
        snippet=make_snippet(text_body, html_body),
        parse_error=problems.summary(),
    )


def parse_envelope(
    headers: Iterable[tuple[str, str]], *, fallback_date: datetime | None = None
) -> tuple[Envelope, str | None]:
    """The envelope from header pairs (values raw or already decoded, as Gmail's metadata format
    gives them), and what could not be read."""
    problems = _Problems(header_defects=False)
    envelope = _envelope(
        tuple((name, _header_text(value)) for name, value in headers), fallback_date, problems
    )
    return envelope, problems.summary()


def extract_attachment(raw: bytes, part_id: str) -> bytes:
    """The transfer-decoded bytes of part ``part_id`` (as ``parse_message`` numbered it).

    Raises ``KeyError`` when the message has no such leaf part, or none that can be read.
    """
    problems = _Problems()
    try:
        for found_id, part in _leaves(_PARSER.parsebytes(raw), problems):
            if found_id == part_id:
                return _payload(part, problems)
    except Exception as exc:  # hostile structure: the part cannot be reached
        raise KeyError(part_id) from exc
    raise KeyError(part_id)


def make_snippet(text_body: str | None, html_body: str | None) -> str:
    """The first words of the message, whitespace collapsed, at most ``SNIPPET_LENGTH`` chars."""
    if text_body:
        # A generous prefix: the snippet never needs more, however long the body.
        return " ".join(text_body[: SNIPPET_LENGTH * 50].split())[:SNIPPET_LENGTH]
    if html_body:
        return _visible_text(html_body, SNIPPET_LENGTH)
    return ""


def _visible_text(markup: str, limit: int) -> str:
    """The first ``limit`` characters of text a browser would show, in one forward pass.

    Written as a scan rather than regular expressions because those take quadratic time on
    hostile markup (200,000 unclosed ``<`` took minutes).
    """
    lower = markup.lower()
    words: list[str] = []
    length, position = 0, 0
    for _ in range(_MAX_TAGS):
        if length > limit:
            break
        start = markup.find("<", position)
        chunk = markup[position:] if start < 0 else markup[position:start]
        for word in html.unescape(chunk).split():
            words.append(word)
            length += len(word) + 1
        end = markup.find(">", start) if start >= 0 else -1
        if end < 0:
            break  # no more tags, or one that never closes: nothing visible follows
        position = end + 1
        name = _TAG_NAME.match(lower, start + 1)
        if name is not None and name.group() in _HIDDEN_ELEMENTS:
            closing = lower.find(f"</{name.group()}", position)
            if closing < 0:
                break
            position = closing
    return " ".join(words)[:limit]


# -- headers ----------------------------------------------------------------------------------


def _raw_items(message: Message, problems: _Problems) -> list[tuple[str, str]]:
    try:
        return [(name, str(value)) for name, value in message.raw_items()]
    except Exception as exc:
        problems.add(f"headers unreadable ({type(exc).__name__})")
        return []


def _header_text(value: str) -> str:
    """An unfolded value with raw 8-bit bytes repaired (the parser keeps them as surrogates)."""
    return _repair(_FOLD.sub("", value)).strip()


def _display(value: str) -> str:
    """A header value as a person reads it: encoded words decoded."""
    return _clean(_decoded_words(value) if "=?" in value else value)


def _envelope(
    headers: tuple[tuple[str, str], ...], fallback_date: datetime | None, problems: _Problems
) -> Envelope:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    addresses = {name: _addresses(name, first.get(name), problems) for name in _ADDRESS_HEADERS}
    in_reply_to = _MESSAGE_ID.findall(first.get("in-reply-to", ""))
    message_ids = _MESSAGE_ID.findall(first.get("message-id", ""))
    bare_id = first.get("message-id", "").strip()
    return Envelope(
        subject=_unstructured("subject", first.get("subject", ""), problems),
        date=_date(first.get("date"), problems) or fallback_date,
        from_addresses=addresses["from"],
        to_addresses=addresses["to"],
        cc_addresses=addresses["cc"],
        bcc_addresses=addresses["bcc"],
        reply_to_addresses=addresses["reply-to"],
        # Some mailers write Message-IDs without angle brackets; keep such an id as it is.
        message_id=message_ids[0] if message_ids else (bare_id or None),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(dict.fromkeys(_MESSAGE_ID.findall(first.get("references", "")))),
    )


def _unstructured(name: str, value: str, problems: _Problems) -> str:
    if len(value) > _DECODE_MAX_LENGTH:
        problems.add(f"{name} too long")
        value = value[:_DECODE_MAX_LENGTH].rsplit(" ", 1)[0]  # not in the middle of a word
    if "=?" not in value:
        return _clean(value)
    header = _registry_reading(name, value)
    if header.failure is not None:
        problems.add(f"{name} unreadable ({header.failure})")
        return _clean(value)
    problems.add_header_defects(header.defects)
    return _clean(_repair(header.text))


def _addresses(name: str, value: str | None, problems: _Problems) -> tuple[Address, ...]:
    if not value:
        return ()
    if len(value) > _REGISTRY_MAX_LENGTH:
        pairs = _split_addresses(value, name, problems)
    else:
        header = _registry_reading(name, value)
        problems.add_header_defects(header.defects)
        pairs = list(header.addresses)
        if header.failure is not None:
            problems.add(f"{name} unreadable ({header.failure})")
            pairs = _split_addresses(value, name, problems)
    addresses: list[Address] = []
    fragments: list[str] = []
    for display, email in pairs:
        display, email = _clean(_repair(display)), _clean(_repair(email))
        if not display and "@" not in email:
            # "Doe, John <j@x>": a display name with an unquoted comma (broken mailers, and
            # values a provider already decoded) splits into a bare word and the real address.
            fragments.append(email)
            continue
        if fragments and email:
            display = ", ".join([*fragments, display] if display else fragments)
        fragments = []
        if email and email != "<>":
            addresses.append(Address(display, email))
    # Bare words with no address after them are local addresses ("To: root").
    return (*addresses, *(Address("", fragment) for fragment in fragments))


@dataclass(frozen=True, slots=True)
class _RegistryReading:
    """What ``policy.default``'s header registry made of one value."""

    text: str = ""
    addresses: tuple[tuple[str, str], ...] = ()  # (display name, addr-spec)
    defects: tuple[object, ...] = ()
    failure: str | None = None  # the exception's class name when the registry raised


@functools.lru_cache(maxsize=REGISTRY_CACHE_SIZE)
def _registry_reading(name: str, value: str) -> _RegistryReading:
    """The registry's reading of ``value``, cached: it is most of the CPU a message costs
    (~0.3 ms a value) and a mailbox repeats its From, To and Cc values again and again."""
    try:
        header = _HEADER_CLASSES[name](name, value)
        addresses = tuple((a.display_name, a.addr_spec) for a in getattr(header, "addresses", ()))
        return _RegistryReading(str(header), addresses, tuple(header.defects))
    except Exception as exc:  # the registry raises on some hostile input
        return _RegistryReading(failure=type(exc).__name__)


def _split_addresses(value: str, name: str, problems: _Problems) -> list[tuple[str, str]]:
    """The stdlib's lenient compat32 address splitter, names decoded afterwards."""
    try:
        return [(_decoded_words(display), email) for display, email in getaddresses([value])]
    except Exception as exc:  # nothing readable in it
        problems.add(f"{name} unreadable ({type(exc).__name__})")
        return []


@functools.lru_cache(maxsize=REGISTRY_CACHE_SIZE)
def _decoded_words(value: str) -> str:
    """Encoded words decoded (cached like ``_registry_reading``: the same names recur)."""
    if len(value) > _DECODE_MAX_LENGTH:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # an undecodable encoded word is shown as it came
        return value


def _date(value: str | None, problems: _Problems) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        problems.add("unreadable Date")
        return None
    # A Date without a zone is most likely UTC; a naive datetime would break comparisons.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- structure and bodies ---------------------------------------------------------------------


def _leaves(message: Message, problems: _Problems) -> Iterator[tuple[str, Message]]:
    """(Gmail-style part id, leaf part), depth first, without recursion."""
    stack: list[tuple[str, Message, int]] = [("", message, 0)]
    leaves = 0
    while stack:
        part_id, part, depth = stack.pop()
        problems.add_defects(part.defects)
        children = part.get_payload() if part.is_multipart() else None
        if part.get_content_type() == "message/rfc822" or not isinstance(children, list):
            leaves += 1
            if leaves > MAX_PARTS:
                problems.add("too many MIME parts")
                return
            yield part_id, part  # an attached message is one attachment, not more body
            continue
        if depth >= MAX_DEPTH:
            problems.add("MIME nesting too deep")
            continue
        prefix = f"{part_id}." if part_id else ""
        stack.extend(
            (f"{prefix}{index}", child, depth + 1)
            for index, child in reversed(list(enumerate(children)))
            if isinstance(child, Message)
        )


def _is_body(part: Message) -> bool:
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    return part.get_content_disposition() != "attachment" and not _filename(part)


def _attachment(part_id: str, part: Message, problems: _Problems) -> AttachmentRecord:
    content_id = _header_text(str(part.get("Content-ID", ""))).strip("<> ") or None
    disposition = part.get_content_disposition()
    return AttachmentRecord(
        filename=_filename(part),
        content_type=part.get_content_type(),
        size=len(_payload(part, problems)),
        part_id=part_id,
        content_id=content_id,
        # An unnamed part referenced by Content-ID is an inline image of the HTML body.
        inline=disposition == "inline" or (disposition is None and content_id is not None),
    )


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:  # a broken RFC 2231 name is no name
        return ""
    if not isinstance(name, str):
        return ""
    # RFC 2231 is decoded by the stdlib; many mailers put RFC 2047 words in names instead.
    name = _header_text(name)
    return _clean(_decoded_words(name) if "=?" in name else name)


def _payload(part: Message, problems: _Problems) -> bytes:
    if part.get_content_type() == "message/rfc822" and part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=policy.compat32)
        return b""
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:  # undecodable content reads as empty
        problems.add(f"body undecodable ({type(exc).__name__})")
        return b""
    return data if isinstance(data, bytes) else b""


def _text_of(part: Message, problems: _Problems) -> str:
    try:
        declared = part.get_content_charset()
    except Exception:  # a malformed charset parameter is no charset
        declared = None
    text = _decode(_payload(part, problems), declared, problems)
    return _clean(text.replace("\r\n", "\n"))


def _decode(data: bytes, declared: str | None, problems: _Problems) -> str:
    charsets = (declared, *_FALLBACK_CHARSETS) if declared else _FALLBACK_CHARSETS
    for charset in charsets:
        try:
            text = data.decode(charset)
        except LookupError:
            problems.add("unknown charset")
        except UnicodeDecodeError:
            if charset == declared:
                problems.add("text not in its declared charset")
        else:
            return text
    return data.decode("latin-1")  # unreachable: Latin-1 decodes any bytes


def _repair(text: str) -> str:
    """Undo the parser's surrogate escapes: raw header bytes are UTF-8 or, failing that, 8-bit."""
    if text.isascii() or not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    for charset in _FALLBACK_CHARSETS:
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # unreachable: Latin-1 decodes any bytes


def _clean(text: str) -> str:
    # Lone surrogates cannot be encoded and NUL cannot be stored in PostgreSQL text.
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
