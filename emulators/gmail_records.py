"""Immutable values a Gmail mailbox hands out: messages, drafts, pages, profile, counters.

They are snapshots: the mailbox replaces them when something changes and never edits one in
place, so the server thread and a test thread can hold them without locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from emulators.gmail_history import HistoryRecord, MessageRef
from emulators.gmail_mime import ParsedMessage

T = TypeVar("T")


@dataclass(frozen=True)
class StoredMessage:
    id: str
    thread_id: str
    label_ids: tuple[str, ...]
    raw: bytes
    internal_date: int
    history_id: int
    parsed: ParsedMessage

    @property
    def size_estimate(self) -> int:
        return len(self.raw)

    @property
    def key(self) -> tuple[int, str]:
        return (self.internal_date, self.id)

    def ref(self) -> MessageRef:
        return MessageRef(self.id, self.thread_id, self.label_ids)


@dataclass(frozen=True)
class Draft:
    id: str
    message: StoredMessage


@dataclass(frozen=True)
class ThreadSummary:
    id: str
    snippet: str
    history_id: int


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None
    result_size_estimate: int


@dataclass(frozen=True)
class HistoryResult:
    records: list[HistoryRecord]
    next_page_token: str | None
    history_id: int


@dataclass(frozen=True)
class Profile:
    email_address: str
    messages_total: int
    threads_total: int
    history_id: int


@dataclass(frozen=True)
class LabelCounts:
    messages_total: int
    messages_unread: int
    threads_total: int
    threads_unread: int


@dataclass(frozen=True)
class Watch:
    topic_name: str
    label_ids: tuple[str, ...]
    history_id: int
    expiration_ms: int
