"""Scheduling sync runs: which accounts are due, which worker holds each (leases), the loop.

An account is due when its ``SyncState.next_run_at`` has passed on the project clock
(``app.clock``; NULL means at once), it is ACTIVE, its owner is not terminated, and no worker's
lease on it is still running. ``lease_due_accounts`` takes up to N due accounts for one worker:

- PostgreSQL: ``SELECT ... FOR UPDATE OF sync_states SKIP LOCKED`` then ``UPDATE lease_owner,
  lease_expires_at`` in one transaction, so any number of worker processes share the load
  without waiting on each other or taking the same account twice;
- SQLite: the same statements; SQLite runs one write transaction at a time and the embedded
  default has one worker process, so it is a simple single-process lease.

A lease lasts ``settings.worker_lease_seconds``; a running worker renews the leases of the
accounts it is syncing (``renew_leases``) and releases each when its run ends. A killed worker
renews nothing, so its accounts are due again once their leases expire, and the next worker
resumes them from the state the engine stored (``sync.engine``). Every write of the engine is
fenced by the lease, so a worker that lost one writes nothing more.

``run_jobs`` is the loop a worker process (``inbox-api worker``) and the embedded worker of
``inbox-api serve`` run: lease due accounts, run up to ``concurrency`` of them at once (the
``AccountRunner`` they pass in: ``sync.engine.scheduled_sync``), release, and otherwise sleep
``idle_seconds`` (or until woken or stopped). It never spins: a failed run returns with
``next_run_at`` in the future, and a run that crashes keeps its lease until it expires. It never
calls a provider itself and never decides what an error means. Beside it runs the maintenance
loop of ``app.services.schedule`` (exports, the purge), so every worker keeps the promises.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from functools import partial

from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from app import clock
from app.models import Account, SyncState
from app.services.schedule import run_maintenance
from app.settings import Settings
from app.types import AccountStatus

logger = logging.getLogger("inbox_api.worker")

AccountRunner = Callable[[int, str], Awaitable[object]]
"""``await run(account_id, lease_owner)``: one sync run of a leased account."""

DEFAULT_CONCURRENCY = 4
# New accounts are normally made due by ``request_sync_now``; this is the safety net.
HOUSEKEEPING_SECONDS = 30.0


def new_worker_id() -> str:
    """A name for this worker's leases: host, process and a random suffix (restarts differ)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def _due_now() -> Q:
    now = clock.now()
    return Q(
        Q(next_run_at__isnull=True) | Q(next_run_at__lte=now),
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
        account__status=AccountStatus.ACTIVE,
        account__owner__terminated_at__isnull=True,
    )


async def ensure_sync_states() -> int:
    """Give every active account without a SyncState one, due at once; returns how many."""
    missing = await (
        Account.filter(status=AccountStatus.ACTIVE)
        .exclude(id__in=Subquery(SyncState.all().values("account_id")))
        .values_list("id", flat=True)
    )
    if missing:
        await SyncState.bulk_create(
            [SyncState(account_id=account_id) for account_id in missing], ignore_conflicts=True
        )
    return len(missing)


async def lease_due_accounts(worker_id: str, *, limit: int, lease_seconds: float) -> list[int]:
    """Lease up to ``limit`` due accounts to ``worker_id``; their ids, soonest due first."""
    if limit < 1:
        return []
    async with in_transaction() as conn:
        due = await (
            SyncState.filter(_due_now())
            .order_by("next_run_at")
            .limit(limit)
            .select_for_update(skip_locked=True, of=("sync_states",))
            .only("account_id")
            .using_db(conn)
        )
        account_ids = [int(state.pk) for state in due]  # the pk is the account id
        if account_ids:
            await (
                SyncState.filter(account_id__in=account_ids)
                .using_db(conn)
                .update(
                    lease_owner=worker_id,
                    lease_expires_at=clock.now() + timedelta(seconds=lease_seconds),
                )
            )
    return account_ids


async def renew_leases(
    worker_id: str, account_ids: Collection[int], *, lease_seconds: float
) -> int:
    """Extend this worker's leases on ``account_ids``; returns how many it still holds."""
    if not account_ids:
        return 0
    return await SyncState.filter(account_id__in=list(account_ids), lease_owner=worker_id).update(
        lease_expires_at=clock.now() + timedelta(seconds=lease_seconds)
    )


async def release_lease(worker_id: str, account_id: int) -> None:
    """Give the account back (if this worker still holds it)."""
    await SyncState.filter(account_id=account_id, lease_owner=worker_id).update(
        lease_owner=None, lease_expires_at=None
    )


async def run_jobs(
    settings: Settings,
    run_account: AccountRunner,
    *,
    stop_event: asyncio.Event,
    wake_event: asyncio.Event | None = None,
    worker_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    idle_seconds: float = 1.0,
    grace_seconds: float = 10.0,
) -> None:
    """Run due accounts until ``stop_event`` is set, then let the runs in progress finish (or,
    after ``grace_seconds``, cancel them) and release their leases.

    ``wake_event`` ends an idle sleep at once (a "sync now" in this process); otherwise due
    accounts are found within ``idle_seconds``, which is also how a "sync now" from another
    process is noticed.
    """
    worker = _Worker(settings, run_account, worker_id or new_worker_id(), concurrency=concurrency)
    await worker.run(stop_event, wake_event, idle_seconds, grace_seconds)


class _Worker:
    def __init__(
        self,
        settings: Settings,
        run_account: AccountRunner,
        worker_id: str,
        *,
        concurrency: int,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._settings = settings
        self._run_account = run_account
        self._id = worker_id
        self._concurrency = concurrency
        self._lease_seconds = float(settings.worker_lease_seconds)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()

    async def run(
        self,
        stop: asyncio.Event,
        wake: asyncio.Event | None,
        idle_seconds: float,
        grace_seconds: float,
    ) -> None:
        logger.info("sync worker %s started (%d at a time)", self._id, self._concurrency)
        heartbeat = asyncio.create_task(self._renew_leases(stop))
        maintenance = asyncio.create_task(
            run_maintenance(self._settings, self._id, stop_event=stop), name="maintenance"
        )
        loop = asyncio.get_running_loop()
        housekeeping_at = loop.time()
        try:
            while not stop.is_set():
                try:
                    if loop.time() >= housekeeping_at:
                        await ensure_sync_states()
                        housekeeping_at = loop.time() + HOUSEKEEPING_SECONDS
                    await self._start_due_runs()
                except Exception:
                    # The database may be away for a moment; the loop must outlive that.
                    logger.exception("sync worker %s: scheduling failed", self._id)
                await self._sleep(stop, wake, idle_seconds)
        finally:
            await self._finish(grace_seconds)
            heartbeat.cancel()
            if not (await asyncio.wait([maintenance], timeout=grace_seconds))[0]:
                maintenance.cancel()
            await asyncio.wait([heartbeat, maintenance])
            logger.info("sync worker %s stopped", self._id)

    async def _start_due_runs(self) -> None:
        free = self._concurrency - len(self._running)
        for account_id in await lease_due_accounts(
            self._id, limit=free, lease_seconds=self._lease_seconds
        ):
            task = asyncio.create_task(self._sync(account_id), name=f"sync-{account_id}")
            self._running[account_id] = task
            task.add_done_callback(partial(self._ended, account_id))

    def _ended(self, account_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(account_id, None)
        self._slot_freed.set()

    async def _sync(self, account_id: int) -> None:
        try:
            await self._run_account(account_id, self._id)
        except asyncio.CancelledError:
            await release_lease(self._id, account_id)  # stopping: let another worker take it
            raise
        except Exception:
            # The engine records provider failures itself; this is the database or a bug.
            # Keeping the lease until it expires is the pause before the next attempt.
            logger.exception("sync worker %s: account %s crashed", self._id, account_id)
            return
        await release_lease(self._id, account_id)

    async def _sleep(self, stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
        if self._slot_freed.is_set() and len(self._running) < self._concurrency:
            self._slot_freed.clear()
            return  # a run ended: look for due accounts again at once
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._slot_freed.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        self._slot_freed.clear()
        if wake is not None:
            wake.clear()

    async def _renew_leases(self, stop: asyncio.Event) -> None:
        # Three renewals per lease period: a slow page never lets a live worker's lease lapse.
        while not stop.is_set():
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await renew_leases(self._id, list(self._running), lease_seconds=self._lease_seconds)
            except Exception:
                logger.exception("sync worker %s: renewing leases failed", self._id)

    async def _finish(self, grace_seconds: float) -> None:
        tasks = list(self._running.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
