"""One mailbox's history log, as ``users.history.list`` exposes it.

Each change to a message appends a record with a fresh history id. Ids grow by a random 1..7, as
Gmail's grow with gaps, so a client that assumes ``id + 1`` breaks here as it would in production.
A record carries the message (id, threadId, its labels after the change) and one or more changes:
``messagesAdded``, ``messagesDeleted``, ``labelsAdded``, ``labelsRemoved``.

Expiry: ``expire(before)`` forgets records up to ``before``; a ``startHistoryId`` below the oldest
answerable id then raises Gmail's 404, which is what tells a client to do one full sync.

Not thread-safe by itself: a ``Mailbox`` owns one log and calls it under its own lock.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from emulators.gmail_errors import GmailError


class HistoryType(StrEnum):
    """Values of the ``historyTypes`` parameter; ``field`` is the record key they fill."""

    MESSAGE_ADDED = "messageAdded"
    MESSAGE_DELETED = "messageDeleted"
    LABEL_ADDED = "labelAdded"
    LABEL_REMOVED = "labelRemoved"

    @property
    def field(self) -> str:
        return _RECORD_FIELDS[self]


_RECORD_FIELDS = {
    HistoryType.MESSAGE_ADDED: "messagesAdded",
    HistoryType.MESSAGE_DELETED: "messagesDeleted",
    HistoryType.LABEL_ADDED: "labelsAdded",
    HistoryType.LABEL_REMOVED: "labelsRemoved",
}


@dataclass(frozen=True)
class MessageRef:
    """The message as a history record shows it."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One change in a record; ``label_ids`` only for label changes."""

    type: HistoryType
    label_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryRecord:
    id: int
    message: MessageRef
    changes: tuple[Change, ...]

    def matches(self, types: Collection[HistoryType], label_id: str | None) -> bool:
        if types and not any(change.type in types for change in self.changes):
            return False
        if label_id is None:
            return True
        touched = {lb for change in self.changes for lb in change.label_ids}
        return label_id in self.message.label_ids or label_id in touched


@dataclass(frozen=True)
class HistoryPage:
    records: list[HistoryRecord]
    next_after: int | None


class HistoryLog:
    """Records in increasing id order; ``current_id`` is the mailbox's historyId."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._records: list[HistoryRecord] = []
        self._ids: list[int] = []
        self.current_id = rng.randint(1_000, 900_000)
        self.oldest_start = self.current_id

    def append(self, message: MessageRef, *changes: Change) -> int:
        """Record ``changes`` to ``message`` under a new id, and return that id."""
        self.current_id += self._rng.randint(1, 7)
        self._records.append(HistoryRecord(self.current_id, message, changes))
        self._ids.append(self.current_id)
        return self.current_id

    def page(
        self,
        start: int,
        after: int,
        *,
        types: Collection[HistoryType],
        label_id: str | None,
        max_results: int,
    ) -> HistoryPage:
        """Matching records with ids above ``after`` (a page of the listing that began at
        ``start``); Gmail's 404 if ``start`` is older than the retained history."""
        if start < self.oldest_start:
            raise GmailError.not_found()
        found: list[HistoryRecord] = []
        for record in self._records[bisect.bisect_right(self._ids, max(start, after)) :]:
            if not record.matches(types, label_id):
                continue
            if len(found) == max_results:
                return HistoryPage(found, found[-1].id)
            found.append(record)
        return HistoryPage(found, None)

    def expire(self, before: int | None = None) -> None:
        """Forget records up to ``before`` (default: all); older start ids then answer 404."""
        cutoff = self.current_id if before is None else min(before, self.current_id)
        keep = bisect.bisect_right(self._ids, cutoff)
        del self._records[:keep]
        del self._ids[:keep]
        self.oldest_start = max(self.oldest_start, cutoff)
