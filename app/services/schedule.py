"""The worker's maintenance loop: requested exports are built, and the purge runs on schedule.

``run_maintenance`` runs beside the sync loop in every worker (``sync.jobs.run_jobs``: the
``inbox-api worker`` processes and the embedded worker of ``inbox-api serve``)::

    every export_poll_seconds   build pending exports (app.services.export), one at a time
    every purge_interval        the purge (app.services.purge), first right at start

Several workers may run it at once: an export is built by the one worker that claimed it, and
every sweep of the purge is idempotent. A failure is logged and retried at the next turn; the
loop ends when ``stop_event`` is set (between steps: an export being built is finished first).

This module holds no retention rule of its own and never calls a provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.services.export import run_pending_exports
from app.services.purge import purge
from app.settings import Settings

logger = logging.getLogger("inbox_api.worker")

PURGE_INTERVAL_SECONDS = 3600.0
EXPORT_POLL_SECONDS = 2.0


async def run_maintenance(
    settings: Settings,
    worker_id: str,
    *,
    stop_event: asyncio.Event,
    purge_interval: float = PURGE_INTERVAL_SECONDS,
    export_poll_seconds: float = EXPORT_POLL_SECONDS,
) -> None:
    """Build exports and purge until ``stop_event`` is set."""
    loop = asyncio.get_running_loop()
    purge_at = loop.time()
    while not stop_event.is_set():
        if loop.time() >= purge_at:
            purge_at = loop.time() + purge_interval
            try:
                report = await purge(settings)
            except Exception:
                logger.exception("worker %s: the purge failed", worker_id)
            else:
                gone = {name: sum(counts.values()) for name, counts in report.sections.items()}
                logger.info("worker %s: purged %s", worker_id, gone)
        try:
            await run_pending_exports(settings, worker_id)
        except Exception:
            logger.exception("worker %s: building exports failed", worker_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=export_poll_seconds)
