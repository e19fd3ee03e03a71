"""A small subset of Gmail's search syntax for the ``q`` parameter of messages/threads.list.

Supported: ``from:``, ``to:``, ``cc:``, ``subject:``, ``label:``, ``in:`` (``anywhere`` too),
``is:unread|read|starred|important``, ``has:attachment``, ``after:``/``before:`` (``YYYY/MM/DD``
or epoch seconds), ``rfc822msgid:``, a leading ``-`` to negate, quoted phrases, and bare words
(matched in subject, snippet, From and To). Anything else is matched as a bare word, which is
also what Gmail does with operators it does not know. Matching is case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from emulators.gmail_labels import Label
from emulators.gmail_records import StoredMessage

Predicate = Callable[[StoredMessage], bool]

_TERM = re.compile(r'(-?)(?:([a-z0-9]+):)?("[^"]*"|\S+)', re.I)
_IS_LABEL = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}
_REVEALING = frozenset({"TRASH", "SPAM"})


@dataclass(frozen=True)
class Query:
    """A parsed ``q``: call it on a message; ``reveals_spam_trash`` when it names those labels."""

    terms: tuple[Predicate, ...]
    reveals_spam_trash: bool

    def __call__(self, message: StoredMessage) -> bool:
        return all(term(message) for term in self.terms)


def parse_query(q: str, label_by_name: Callable[[str], Label | None]) -> Query:
    terms: list[Predicate] = []
    reveals = False
    for negated, operator, raw_value in _TERM.findall(q):
        value = raw_value.strip('"').lower()
        op = operator.lower()
        if op in ("in", "label"):
            label_id = "*" if value == "anywhere" else _label_id(value, label_by_name)
            reveals = reveals or label_id in _REVEALING or label_id == "*"
            term = _has_label(label_id)
        else:
            term = _term(op, value, raw_value)
        terms.append(_negate(term) if negated else term)
    return Query(tuple(terms), reveals)


def _term(op: str, value: str, raw_value: str) -> Predicate:
    if op in ("from", "to", "cc", "subject"):
        return _header_contains(op, value)
    if op == "is" and value == "read":
        return _negate(_has_label("UNREAD"))
    if op == "is" and value in _IS_LABEL:
        return _has_label(_IS_LABEL[value])
    if op == "has" and value == "attachment":
        return lambda m: any(part.filename for part in m.parsed.payload.walk())
    if op in ("after", "before"):
        limit = _day_ms(value)
        if op == "after":
            return lambda m: m.internal_date >= limit
        return lambda m: m.internal_date < limit
    if op == "rfc822msgid":
        wanted = value.strip("<>")
        return lambda m: (m.parsed.message_id or "").strip("<>").lower() == wanted
    return _text_contains(f"{op}:{value}" if op else value)


def _label_id(value: str, label_by_name: Callable[[str], Label | None]) -> str:
    aliases = {"drafts": "DRAFT", "sent": "SENT"}
    label = label_by_name(aliases.get(value, value)) or label_by_name(value.replace("-", " "))
    return label.id if label else f"unknown:{value}"


def _has_label(label_id: str) -> Predicate:
    if label_id == "*":
        return lambda m: True
    return lambda m: label_id in m.label_ids


def _negate(term: Predicate) -> Predicate:
    return lambda m: not term(m)


def _header_contains(name: str, value: str) -> Predicate:
    return lambda m: value in (m.parsed.header(name) or "").lower()


def _text_contains(value: str) -> Predicate:
    def contains(message: StoredMessage) -> bool:
        parsed = message.parsed
        fields = (parsed.subject, parsed.snippet, parsed.header("From"), parsed.header("To"))
        return any(value in (text or "").lower() for text in fields)

    return contains


def _day_ms(value: str) -> int:
    if value.isdigit():
        return int(value) * 1000
    try:
        day = datetime.strptime(value.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=UTC)
    except ValueError:
        return 0
    return int(day.timestamp() * 1000)
