"""Recomputing threads from the messages the cache still holds.

A thread row summarises its messages: subject of the first, snippet of the last, participants,
the time of the last message and the counts. Whoever adds or removes messages (``sync.apply``
for a batch, ``app.services.purge`` for retention) calls ``recompute_threads`` with the threads
it touched, inside its own transaction; a thread left without messages is deleted, so nothing of
a removed message lingers in a summary.

This module never reads or writes anything but the ``messages`` and ``threads`` tables, and
never opens a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient

from app.models import Message, Thread

T = TypeVar("T")

# Well under SQLite's and asyncpg's limits on bound parameters per statement.
IN_LIST_SIZE = 900
MAX_PARTICIPANTS = 50
THREAD_COLUMNS = (
    "subject",
    "snippet",
    "participants",
    "last_message_at",
    "message_count",
    "unread_count",
)
_MEMBER_COLUMNS = (
    "id",
    "thread_id",
    "date",
    "subject",
    "snippet",
    "from_addresses",
    "to_addresses",
    "cc_addresses",
    "unread",
)


@dataclass(frozen=True, slots=True)
class Recomputed:
    """How many of the touched threads were updated, and how many were left empty and deleted."""

    updated: int
    deleted: int


async def recompute_threads(
    conn: BaseDBAsyncClient, thread_ids: Iterable[int | None]
) -> Recomputed:
    """Recompute the summaries of ``thread_ids`` (None entries are ignored); delete empty ones."""
    touched = sorted({t for t in thread_ids if t is not None})
    members: dict[int, list[dict[str, Any]]] = {thread_id: [] for thread_id in touched}
    for chunk in chunks(touched):
        rows = await Message.filter(thread_id__in=chunk).using_db(conn).values(*_MEMBER_COLUMNS)
        for row in rows:
            members[row["thread_id"]].append(row)
    summaries = [
        Thread(id=thread_id, **thread_summary(rows)) for thread_id, rows in members.items() if rows
    ]
    if summaries:
        await Thread.bulk_update(summaries, fields=THREAD_COLUMNS, using_db=conn)
    empty = [thread_id for thread_id, rows in members.items() if not rows]
    for chunk in chunks(empty):
        await Thread.filter(id__in=chunk).using_db(conn).delete()
    return Recomputed(updated=len(summaries), deleted=len(empty))


def thread_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The thread columns for its member rows (at least one), oldest first after sorting."""
    rows.sort(key=lambda row: (row["date"], row["id"]))
    participants: dict[str, dict[str, str]] = {}
    for row in rows:
        for field in ("from_addresses", "to_addresses", "cc_addresses"):
            for address in row[field]:
                key = str(address.get("email", "")).lower()
                if key and key not in participants and len(participants) < MAX_PARTICIPANTS:
                    participants[key] = address
    return {
        "subject": rows[0]["subject"],
        "snippet": rows[-1]["snippet"],
        "participants": list(participants.values()),
        "last_message_at": rows[-1]["date"],
        "message_count": len(rows),
        "unread_count": sum(1 for row in rows if row["unread"]),
    }


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one IN list."""
    for start in range(0, len(items), IN_LIST_SIZE):
        yield items[start : start + IN_LIST_SIZE]
