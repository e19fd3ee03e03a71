"""The sync worker loop, as ``inbox-api worker`` and the embedded worker of ``inbox-api serve``
both run it: one function, so the two cannot drift apart.

    run_worker: the leasing loop of ``sync.jobs`` running ``sync.engine``'s per-account state
                machine, and beside it the IDLE watchers of the IMAP accounts it syncs
                (``sync.idle_watchers``): new mail makes the account due and wakes the loop;
                after each caught-up run, the account's Gmail watch or Graph subscription is
                kept current (``sync.push``).

Which worker watches an account (``sync.idle_claims``): with PostgreSQL, an advisory lock per
account held by the worker that synced it first; with SQLite, the only worker. The process
around it (database, vault, event bus, signals) belongs to the callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.events import EventBus, InProcessBus
from app.settings import Settings
from sync.engine import AdapterFactory, scheduled_sync
from sync.idle_claims import AdvisoryClaims, LocalClaims, WatchClaims
from sync.idle_watchers import IdleWatchers
from sync.jobs import DEFAULT_CONCURRENCY, run_jobs
from sync.push import PushRegistrar


async def run_worker(
    settings: Settings,
    adapter_factory: AdapterFactory,
    *,
    stop_event: asyncio.Event,
    events: EventBus | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    worker_id: str | None = None,
    on_idle: Callable[[int], None] | None = None,
) -> None:
    """Sync due accounts with ``adapter_factory``'s adapters until ``stop_event`` is set,
    watching the IMAP ones among them over IDLE (``on_idle(account_id)`` each time the server
    confirms an account's IDLE: health reporting, tests)."""
    wake = asyncio.Event()
    claims: WatchClaims = (
        AdvisoryClaims(settings.effective_database_url) if settings.is_postgres else LocalClaims()
    )
    watchers = IdleWatchers(adapter_factory, claims, wake_event=wake, on_idle=on_idle)
    runner = scheduled_sync(
        watchers.open_adapter,
        events or InProcessBus(),
        default_interval_seconds=settings.sync_interval_seconds,
        after_sync=PushRegistrar(settings),
    )
    async with watchers.running(stop_event):
        await run_jobs(
            settings,
            runner,
            stop_event=stop_event,
            wake_event=wake,
            concurrency=concurrency,
            worker_id=worker_id,
        )
