"""IMAP wire format (RFC 3501/9051): parsing server responses and writing command arguments.

No I/O here. ``imap_connection`` reads one response at a time as text pieces and the literals
between them (``{n}\\r\\n`` followed by n bytes), and this module turns them into values:

    atom            -> str        (``FLAGS``, ``\\Seen``, ``BODY[HEADER.FIELDS (MESSAGE-ID)]``)
    number          -> str        (callers convert with ``int``; atoms and numbers look alike)
    NIL             -> None
    quoted, literal -> bytes      (strings: mailbox names, header bytes, message bodies)
    ( ... )         -> list

A section spec in brackets stays inside its atom even when it holds spaces or parentheses, so
``BODY[]`` and ``BODY[HEADER.FIELDS (MESSAGE-ID)]`` are the keys a FETCH response is read by.
Status responses (``OK``/``NO``/``BAD``/``BYE``/``PREAUTH``) keep their response code apart
from their human text. Sequence sets are written compressed (``1:3,7``) and read back with a
cap on their size, because a server may answer ``VANISHED`` with ranges of UIDs it never used.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Item = str | bytes | None | list["Item"]

STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
MAX_SET_SIZE = 1_000_000

_TOKEN = re.compile(
    rb"""
      (?P<open>\()
    | (?P<close>\))
    | "(?P<quoted>(?:[^"\\]|\\.)*)"
    | \{(?P<literal>\d+)\+?\}
    | (?P<atom>(?:[^\s()"{\[\]]+|\[[^\]]*\])+)
    | (?P<space>[ \t]+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_QUOTED_ESCAPE = re.compile(rb"\\(.)")
_CODE = re.compile(rb"\[((?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*)\]\s?")


class ProtocolError(ValueError):
    """The server sent something this parser cannot read."""


@dataclass(slots=True)
class Response:
    """One untagged (``tag == "*"``), tagged or continuation (``tag == "+"``) response.

    ``kind`` is the upper-cased keyword (``FETCH``, ``EXISTS``, ``OK``, ``LIST`` ...);
    ``number`` the leading number of ``* 12 FETCH``/``* 3 EXISTS``; ``items`` the parsed
    rest of a data response; ``code`` and ``text`` the response code and human text of a
    status response.
    """

    tag: str
    kind: str
    number: int | None = None
    items: list[Item] = field(default_factory=list)
    code: list[Item] = field(default_factory=list)
    text: str = ""

    @property
    def code_name(self) -> str:
        """The response code's keyword (``UIDVALIDITY``, ``AUTHENTICATIONFAILED``...) or ""."""
        return self.code[0].upper() if self.code and isinstance(self.code[0], str) else ""


def parse_response(text: bytes, literals: Sequence[bytes] = ()) -> Response:
    """Parse one response: ``text`` is its lines joined with each literal's bytes left out
    (the ``{n}`` markers stay), ``literals`` the literal bytes in order."""
    text = text.rstrip(b"\r\n")
    tag, _, rest = text.partition(b" ")
    tag_text = tag.decode("ascii", "replace")
    if tag_text == "+":
        return Response("+", "+", text=rest.decode("utf-8", "replace"))
    first, _, after = rest.partition(b" ")
    number: int | None = None
    if tag_text == "*" and first.isdigit():
        number = int(first)
        first, _, after = after.partition(b" ")
    kind = first.decode("ascii", "replace").upper()
    if kind in STATUS_WORDS:
        code, human = _split_code(after)
        return Response(tag_text, kind, number, code=code, text=human)
    return Response(tag_text, kind, number, items=parse_items(after, literals))


def parse_items(text: bytes, literals: Sequence[bytes] = ()) -> list[Item]:
    """The values of a response's data, with ``{n}`` markers taken from ``literals``."""
    stack: list[list[Item]] = [[]]
    next_literal = 0
    for match in _TOKEN.finditer(text):
        group = match.lastgroup
        if group == "space":
            continue
        if group == "open":
            stack.append([])
            continue
        if group == "close":
            if len(stack) == 1:
                raise ProtocolError("unbalanced ')'")
            closed = stack.pop()
            stack[-1].append(closed)
            continue
        value: Item
        if group == "quoted":
            value = _QUOTED_ESCAPE.sub(rb"\1", match.group("quoted"))
        elif group == "literal":
            if next_literal >= len(literals):
                raise ProtocolError("literal marker without its bytes")
            value = literals[next_literal]
            next_literal += 1
        elif group == "atom":
            atom = match.group("atom").decode("utf-8", "surrogateescape")
            value = None if atom.upper() == "NIL" else atom
        else:
            raise ProtocolError("unexpected character in a response")
        stack[-1].append(value)
    if len(stack) != 1:
        raise ProtocolError("unbalanced '('")
    return stack[0]


def _split_code(text: bytes) -> tuple[list[Item], str]:
    match = _CODE.match(text)
    if match is None:
        return [], text.decode("utf-8", "replace")
    code = parse_items(match.group(1))
    return code, text[match.end() :].decode("utf-8", "replace")


# -- reading values ------------------------------------------------------------------------------


def as_text(item: Item) -> str:
    """A string value (atom, quoted or literal) as text; NIL is ""."""
    if item is None:
        return ""
    if isinstance(item, bytes):
        return item.decode("utf-8", "surrogateescape")
    if isinstance(item, str):
        return item
    raise ProtocolError("expected a string, got a list")


def as_int(item: Item) -> int:
    if isinstance(item, str) and item.isdigit():
        return int(item)
    raise ProtocolError("expected a number")


def as_list(item: Item) -> list[Item]:
    if isinstance(item, list):
        return item
    raise ProtocolError("expected a parenthesised list")


def pairs(items: Sequence[Item]) -> dict[str, Item]:
    """``(KEY value KEY value ...)`` -> {KEY: value} with upper-cased keys."""
    if len(items) % 2:
        raise ProtocolError("a key without its value")
    return {as_text(items[i]).upper(): items[i + 1] for i in range(0, len(items), 2)}


# -- sequence sets -------------------------------------------------------------------------------


def compress(numbers: Iterable[int]) -> str:
    """Sorted UIDs as a compact sequence set: [1, 2, 3, 7] -> "1:3,7"."""
    ordered = sorted(set(numbers))
    if not ordered:
        raise ValueError("an empty sequence set")
    ranges: list[str] = []
    start = previous = ordered[0]
    for number in ordered[1:]:
        if number != previous + 1:
            ranges.append(f"{start}:{previous}" if start != previous else str(start))
            start = number
        previous = number
    ranges.append(f"{start}:{previous}" if start != previous else str(start))
    return ",".join(ranges)


def expand(sequence_set: str, *, limit: int = MAX_SET_SIZE) -> list[int]:
    """ "1:3,7" -> [1, 2, 3, 7]; raises ``ProtocolError`` past ``limit`` numbers or on ``*``."""
    numbers: list[int] = []
    for part in sequence_set.split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ProtocolError("not a plain sequence set")
        first, last = int(low), int(high or low)
        first, last = min(first, last), max(first, last)
        if len(numbers) + last - first + 1 > limit:
            raise ProtocolError("sequence set too large")
        numbers.extend(range(first, last + 1))
    return numbers


# -- writing arguments ---------------------------------------------------------------------------


def quote(value: str) -> str:
    """An IMAP quoted string; raises on characters a quoted string cannot carry."""
    if any(char in value for char in "\r\n\0"):
        raise ValueError("CR, LF and NUL cannot be sent in a quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def decode_mailbox_name(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3) -> text, for display; undecodable names stay as sent."""
    if "&" not in name:
        return name
    out: list[str] = []
    position = 0
    while position < len(name):
        start = name.find("&", position)
        if start < 0:
            out.append(name[position:])
            break
        out.append(name[position:start])
        end = name.find("-", start)
        if end < 0:
            return name
        encoded = name[start + 1 : end]
        if not encoded:
            out.append("&")
        else:
            padded = encoded.replace(",", "/") + "=" * (-len(encoded) % 4)
            try:
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                return name
        position = end + 1
    return "".join(out)


def encode_mailbox_name(text: str) -> str:
    """Text -> modified UTF-7, the form mailbox names take on the wire."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for char in text:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)
