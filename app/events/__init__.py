"""Publish/subscribe of small events between the parts of Inbox API.

Events carry ids only, never content or secrets: a subscriber that needs a message reads it
from the cache with the caller's own scopes. The embedded default fans out in-process; with
PostgreSQL, a bus on LISTEN/NOTIFY carries the same events between processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    owner_id: int
    token_id: int


@dataclass(frozen=True, slots=True)
class OwnerTerminated:
    owner_id: int


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """Something was written to an account's change log, up to ``change_id``."""

    owner_id: int
    account_id: int
    change_id: int


Event = TokenRevoked | OwnerTerminated | AccountChanged


class EventBus(Protocol):
    """Where events are published and from where subscribers read them."""

    async def publish(self, event: Event) -> None: ...

    def subscribe(self) -> AbstractAsyncContextManager[asyncio.Queue[Event]]: ...


class InProcessBus:
    """Fan-out to every subscriber queue of this process."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size

    async def publish(self, event: Event) -> None:
        for queue in list(self._queues):
            if queue.full():
                # A stalled subscriber loses live events, not correctness: it resumes from the
                # change log by cursor.
                queue.get_nowait()
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)
