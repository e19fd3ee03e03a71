"""The live end of the change log: one follower per process hands new rows to subscriptions.

::

    writers (sync.apply, status changes) --COMMIT--> change_log --AccountChanged--> event bus
    ChangeTail (one per process): woken by any AccountChanged, or every ``poll_interval``,
        reads the rows after its horizon once for the whole process, in id order, and offers
        each to the listeners whose filter admits it (by owner, account and kind)
    follow_changes (one per subscription): replays the log from the client's position, then
        takes rows from its listener; ids alone decide order and deduplication

The horizon: every change with ``id <= horizon`` has been offered to listeners, or never will
exist. On PostgreSQL ids come from a sequence and transactions commit in any order, so row 101
may be visible while row 100 is still committing; the tail only advances over contiguous ids. A
missing id holds it back until the row appears or ``settle`` seconds after the hole was first
seen (an insert rolled back, an account deleted). Writers insert change-log rows last, right
before COMMIT, so real holes close within milliseconds. On start the horizon is the last row
written ``settle`` seconds ago, so the rows of transactions still committing are not skipped.

The event payload is never trusted for content, only as a hint: an ``AccountChanged`` whose
``change_id`` is already under the horizon wakes nothing. A lost event costs at most
``poll_interval`` of latency.

A listener holds at most ``listener_limit`` rows; past that it drops them and its subscription
reads the log instead, from where it stands (a stalled client costs memory once, not forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from tortoise import timezone

from app.events import AccountChanged, Event, EventBus
from app.services.change_feed import (
    BATCH_SIZE,
    Change,
    FeedFilter,
    Position,
    find_gaps,
    last_change_id,
    read_changes,
    read_log_after,
)
from app.types import AccountId, OwnerId

logger = logging.getLogger(__name__)

HOLE_RECHECK_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Gap:
    """Changes of ``account_id`` after ``position`` were purged before the client read them."""

    account_id: AccountId
    position: Position


class Listener:
    """Live rows for one subscription, bounded; ``take()`` returns None after an overflow."""

    __slots__ = ("_limit", "_overflowed", "_pending", "_waiter", "feed", "since")

    def __init__(self, feed: FeedFilter, since: int, limit: int) -> None:
        self.feed = feed
        self.since = since
        self._limit = limit
        self._pending: list[Change] = []  # a deque would allocate 600 bytes per idle listener
        self._overflowed = False
        # A bare future while waiting, not an asyncio.Event: idle listeners are most of them.
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, change: Change) -> None:
        if self._overflowed:
            return
        if len(self._pending) >= self._limit:
            self._overflowed = True
            self._pending.clear()
        else:
            self._pending.append(change)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self) -> None:
        """Until ``take()`` has something to say."""
        if self._pending or self._overflowed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> list[Change] | None:
        """The rows offered since the last call, or None if some were dropped."""
        if self._overflowed:
            self._overflowed = False
            return None
        taken, self._pending = self._pending, []
        return taken


class ChangeTail:
    """Follows the committed end of the change log for every subscription of this process."""

    def __init__(
        self,
        events: EventBus,
        *,
        poll_interval: float = 1.0,
        settle: float = 2.0,
        listener_limit: int = 1000,
    ) -> None:
        self._events = events
        self._poll_interval = poll_interval
        self._settle = settle
        self._listener_limit = listener_limit
        self._listeners: dict[OwnerId, set[Listener]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._hole: tuple[int, float] | None = None  # first missing id, when first seen
        self._started = False
        self.horizon = 0

    @property
    def listener_count(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    @property
    def running(self) -> bool:
        """Whether the follower task is alive (it starts with the first listener)."""
        return self._task is not None and not self._task.done()

    @asynccontextmanager
    async def listen(self, feed: FeedFilter) -> AsyncIterator[Listener]:
        """A listener for ``feed``; rows after its ``since`` reach it in id order."""
        horizon = await self._running()
        listener = Listener(feed, horizon, self._listener_limit)
        group = self._listeners.setdefault(feed.owner_id, set())
        group.add(listener)
        try:
            yield listener
        finally:
            group.discard(listener)
            if not group and self._listeners.get(feed.owner_id) is group:
                del self._listeners[feed.owner_id]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _running(self) -> int:
        if self._task is None or self._task.done():
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(self._ready), name="change-tail")
        assert self._ready is not None
        await asyncio.shield(self._ready)
        return self.horizon

    async def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self._events.subscribe() as queue:
                if not self._started:
                    # created_at comes from the writers' system clocks, not app.clock.
                    settled = timezone.now() - timedelta(seconds=self._settle)
                    self.horizon = await last_change_id(written_before=settled)
                    self._started = True
                await self._catch_up()
                ready.set_result(None)
                await self._follow(queue)
        except asyncio.CancelledError:
            ready.cancel()
            raise
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            raise

    async def _follow(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            wait = HOLE_RECHECK_SECONDS if self._hole is not None else self._poll_interval
            with contextlib.suppress(TimeoutError):
                event = await asyncio.wait_for(queue.get(), wait)
                if isinstance(event, AccountChanged) and event.change_id <= self.horizon:
                    continue
            while not queue.empty():
                queue.get_nowait()
            try:
                await self._catch_up()
            except Exception as error:
                # Every subscription of the process hangs on this task: it never ends on an
                # error. The next wake-up or poll retries from the same horizon.
                logger.warning("change log unreadable (%s); retrying", type(error).__name__)

    async def _catch_up(self) -> None:
        while True:
            changes = await read_log_after(self.horizon)
            if not self._advance(changes) or len(changes) < BATCH_SIZE:
                return

    def _advance(self, changes: list[Change]) -> bool:
        """Offer contiguous rows; False when a hole that has not settled stops the tail."""
        for change in changes:
            if change.id != self.horizon + 1 and not self._settled(self.horizon + 1):
                return False
            self._hole = None
            self.horizon = change.id
            for listener in self._listeners.get(change.owner_id, ()):
                if listener.feed.admits(change):
                    listener.offer(change)
        return True

    def _settled(self, missing: int) -> bool:
        now = time.monotonic()
        if self._hole is None or self._hole[0] != missing:
            self._hole = (missing, now)
        return now - self._hole[1] >= self._settle


async def follow_changes(
    tail: ChangeTail, feed: FeedFilter, after: Position | None
) -> AsyncIterator[Change | Gap]:
    """Every change of ``feed`` after ``after`` (None: from now), then live ones, once each."""
    async with tail.listen(feed) as listener:
        position = listener.since if after is None else after.change_id
        if after is not None:
            for account_id in await find_gaps(feed, after):
                yield Gap(account_id, after)
        up_to = listener.since
        while True:
            while position < up_to:
                changes = await read_changes(feed, after=position, up_to=up_to)
                for change in changes:
                    yield change
                position = changes[-1].id if len(changes) == BATCH_SIZE else up_to
            await listener.wait()
            live = listener.take()
            if live is None:
                # Same step as take(): every row above this horizon will reach the listener.
                up_to = tail.horizon
                continue
            for change in live:
                if change.id > position:
                    position = change.id
                    yield change
