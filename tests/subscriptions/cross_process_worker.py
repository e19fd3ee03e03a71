"""A sync worker process for the cross-process subscription test.

``python -m tests.subscriptions.cross_process_worker --gmail-base URL`` runs what
``inbox-api worker`` runs, ``app.worker.run_worker`` (leases, ``sync.engine``, ``sync.apply``)
with the Gmail adapter and a PostgreSQL event bus, so API processes hear of new mail over
LISTEN/NOTIFY. One piece differs: access tokens come from the emulator's test control
(``tests.sync.harness.RemoteTokens``), because ``python -m emulators.gmail_emulator`` serves
plain http and the production token source accepts https Google endpoints only. Settings come
from the ``INBOX_API_*`` environment, as for the real worker.
"""

from __future__ import annotations

import argparse
import asyncio

from app.db import close_database, open_database
from app.events.postgres import PostgresBus
from app.models import Account
from app.settings import Settings
from app.worker import run_worker, stop_on_signals
from sync.providers.gmail import GmailAdapter
from tests.sync.harness import RemoteTokens


async def work(gmail_base: str) -> None:
    settings = Settings()
    stop = asyncio.Event()
    stop_on_signals(stop)
    bus = PostgresBus(settings.effective_database_url)

    async def adapters(account: Account) -> GmailAdapter:
        return GmailAdapter(gmail_base, RemoteTokens(gmail_base, account.address))

    await open_database(settings, apply_migrations=False)
    await bus.start()
    try:
        await run_worker(settings, adapters, stop_event=stop, events=bus)
    finally:
        await bus.stop()
        await close_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gmail-base", required=True)
    asyncio.run(work(parser.parse_args().gmail_base))


if __name__ == "__main__":
    main()
