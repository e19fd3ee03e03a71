"""The sync worker process (``inbox-api worker``): wiring only.

``run_worker`` (``sync.worker_loop``, shared with the embedded worker of ``inbox-api serve``)
puts the pieces together: the leasing loop of ``sync.jobs`` running ``sync.engine``'s
per-account state machine with the adapters an ``AdapterFactory`` builds, and the IDLE watchers
of the IMAP accounts it syncs.
``serve_worker`` is the process around it: database, vault, event bus (LISTEN/NOTIFY with
PostgreSQL, so API processes hear of new mail), the production adapters, and a graceful stop on
SIGTERM or SIGINT (runs in progress finish their batch or are cancelled; each batch is one
transaction, so nothing is lost either way).

With PostgreSQL run as many worker processes as the load needs; they share the accounts through
leases. With the embedded SQLite default, ``inbox-api serve`` runs the same loop in-process and
no worker process is needed. This module holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from app.db import close_database, open_database
from app.events import InProcessBus
from app.events.postgres import PostgresBus
from app.services.credentials import start_vault
from app.settings import Settings
from sync.sessions import AdapterFactory as ProductionAdapters
from sync.worker_loop import run_worker

__all__ = ["main", "run_worker", "serve_worker", "stop_on_signals"]


def stop_on_signals(stop_event: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop_event``: finish what runs, take nothing new."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_event.set)


async def serve_worker(settings: Settings) -> None:
    """Run a worker process with the production adapters until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    await open_database(settings, apply_migrations=not settings.is_postgres)
    bus: InProcessBus | PostgresBus = InProcessBus()
    try:
        await start_vault(settings)  # the adapters' token sources open sealed tokens
        if settings.is_postgres:
            bus = PostgresBus(settings.effective_database_url)
            await bus.start()
        adapters = ProductionAdapters(settings, bus)
        try:
            await run_worker(settings, adapters.open_adapter, stop_event=stop, events=bus)
        finally:
            await adapters.aclose()
    finally:
        if isinstance(bus, PostgresBus):
            await bus.stop()
        await close_database()


def main() -> int:
    """``python -m app.worker``, which ``inbox-api worker`` runs; settings come from the
    ``INBOX_API_*`` variables."""
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve_worker(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
