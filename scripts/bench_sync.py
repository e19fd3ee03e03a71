#!/usr/bin/env python3
"""Benchmark the initial sync of a Gmail mailbox against the emulator's own serving rate.

Run with the project's interpreter from the repository root:
``.venv/bin/python scripts/bench_sync.py [--messages 10000] [--postgres]``

In one run, with the emulator in its own process (``python -m emulators.gmail_emulator``),
three users with the same corpus (the emulator's quota meter adds up each user's last minute
of calls on every call, so each measurement gets a user of its own, and none pays for the calls
of the one before):

1. ceiling: a bare httpx client lists the mailbox and fetches every message ``format=raw``
   with the adapter's concurrency (8), parsing nothing and storing nothing: what the emulator
   can serve for exactly the calls a sync makes;
2. adapter only: ``GmailAdapter.full_sync_page`` to the last page (fetching and parsing into
   records, storing nothing), to show what the database side adds;
3. Inbox API: a sync worker process (``python -m tests.sync.harness worker``, i.e.
   ``app.worker.run_worker`` with real Gmail adapters) does the account's initial sync with
   bodies into a fresh database (SQLite by default, or the PostgreSQL server given), timed from
   the moment the account is due to the moment its SyncState records the success; its peak RSS
   (VmHWM) is read before it is stopped.

Prints a markdown table. Not a test: absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

# Run as a file from any directory: the repository root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from app.db import close_database, open_database
from app.models import Account, Message, SyncState
from app.settings import Settings
from sync.providers.gmail import GmailAdapter
from tests import database
from tests.factories import make_account, make_owner
from tests.sync.harness import RemoteTokens, emulator_process, emulator_token, worker_command

ROOT = Path(__file__).resolve().parents[1]
CEILING_USER, ADAPTER_USER, WORKER_USER = (
    f"{name}@example.com" for name in ("ceiling", "adapter", "worker")
)
SEED = 1
CONCURRENCY = 8  # GmailAdapter's default


async def add_user(base_url: str, user: str, messages: int) -> None:
    """Another user of the emulator with the same corpus as the first one."""
    async with httpx.AsyncClient(base_url=base_url + "/_emulator", timeout=600) as control:
        (await control.post("/users", json={"email": user})).raise_for_status()
        corpus = {"seed": SEED, "count": messages}
        (await control.post(f"/users/{user}/corpus", json=corpus)).raise_for_status()


async def bare_fetch(base_url: str) -> float:
    """Messages per second a plain client gets: list, then ``format=raw`` for each id."""
    headers = {"Authorization": f"Bearer {emulator_token(base_url, CEILING_USER)}"}
    api = base_url + "/gmail/v1/users/me/messages"
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    started = time.perf_counter()
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
        slots = asyncio.Semaphore(CONCURRENCY)
        fetched = 0
        params: dict[str, Any] = {"maxResults": 500, "includeSpamTrash": "true"}

        async def fetch(message_id: str) -> None:
            async with slots:
                response = await client.get(f"{api}/{message_id}", params={"format": "raw"})
            response.raise_for_status()

        while True:
            listing = (await client.get(api, params=params)).json()
            ids = [entry["id"] for entry in listing.get("messages", ())]
            await asyncio.gather(*(fetch(message_id) for message_id in ids))
            fetched += len(ids)
            if not listing.get("nextPageToken"):
                break
            params["pageToken"] = listing["nextPageToken"]
    return fetched / (time.perf_counter() - started)


async def adapter_only(base_url: str) -> float:
    """Messages per second of the adapter's full sync alone: fetched and parsed, not stored."""
    adapter = GmailAdapter(base_url, RemoteTokens(base_url, ADAPTER_USER))
    started, count, page_token = time.perf_counter(), 0, None
    try:
        while True:
            batch = await adapter.full_sync_page(page_token, with_content=True)
            count += len(batch.upserts)
            page_token = batch.next_page_token
            if page_token is None:
                return count / (time.perf_counter() - started)
    finally:
        await adapter.aclose()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def worker_sync(base_url: str, settings: Settings, messages: int) -> tuple[float, float]:
    """(messages per second, peak RSS in MiB) of a worker process's initial sync."""
    env = {**os.environ, "INBOX_API_DATABASE_URL": settings.effective_database_url}
    worker = await asyncio.create_subprocess_exec(*worker_command(base_url), env=env, cwd=ROOT)
    try:
        await asyncio.sleep(2)  # the worker's start-up is not part of the sync
        owner = await make_owner()
        account = await make_account(owner.owner, address=WORKER_USER)
        return await timed_initial_sync(worker, account, messages)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), timeout=30)


async def timed_initial_sync(
    worker: asyncio.subprocess.Process, account: Account, messages: int
) -> tuple[float, float]:
    """Make ``account`` due for the running ``worker``; (messages per second, peak RSS in MiB)
    of its initial sync, timed until its SyncState records the success."""
    started = time.perf_counter()
    await SyncState.create(account_id=account.id)
    while True:
        state = await SyncState.get(account_id=account.id)
        if state.last_success_at is not None or state.last_error_code is not None:
            break
        if worker.returncode is not None:
            raise RuntimeError("the worker exited")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    if state.last_error_code is not None:
        raise RuntimeError(f"sync failed: {state.last_error_code}")
    synced = await Message.filter(account_id=account.id).count()
    if synced != messages:
        raise RuntimeError(f"synced {synced} of {messages} messages")
    return synced / elapsed, peak_rss_mib(worker.pid)


@asynccontextmanager
async def bench_database(postgres: bool) -> AsyncIterator[Settings]:
    """Settings on an open, migrated database of its own (a fresh PostgreSQL database, or
    SQLite in a temporary data directory), dropped afterwards (the Gmail and Graph sync
    benchmarks)."""
    with tempfile.TemporaryDirectory() as data_dir:
        if postgres:
            url = await database.create_postgres_database()
        else:
            url = f"sqlite://{Path(data_dir) / 'bench.sqlite3'}"
        settings = Settings(database_url=url, data_dir=Path(data_dir))
        await open_database(settings, apply_migrations=True)
        try:
            yield settings
        finally:
            await close_database()
            if postgres:
                await database.drop_postgres_database(url)


async def run(messages: int, database_url: str | None) -> None:
    async with bench_database(database_url is not None) as settings:
        print(f"loading {messages} messages into the emulator...", file=sys.stderr)
        with emulator_process(CEILING_USER, messages=messages, seed=SEED) as base_url:
            await add_user(base_url, ADAPTER_USER, messages)
            await add_user(base_url, WORKER_USER, messages)
            ceiling = await bare_fetch(base_url)
            parsed = await adapter_only(base_url)
            rate, rss = await worker_sync(base_url, settings, messages)
    backend = "PostgreSQL" if database_url else "SQLite"
    print_sync_table(
        f"Initial sync of {messages} messages (raw, bodies cached), {backend}",
        (f"ceiling: bare httpx, format=raw, {CONCURRENCY} at a time", ceiling),
        ("GmailAdapter alone: fetch and parse", parsed),
        (rate, rss),
    )


def print_sync_table(
    title: str, ceiling: tuple[str, float], adapter: tuple[str, float], worker: tuple[float, float]
) -> None:
    """The markdown table of a sync benchmark: the ceiling, the adapter alone and the worker
    (messages/s and peak RSS in MiB), each as a share of the ceiling."""
    (ceiling_label, top), (adapter_label, parsed), (rate, rss) = ceiling, adapter, worker
    print(f"\n{title}\n")
    print("| measurement | messages/s | share of ceiling | peak RSS |")
    print("|---|---|---|---|")
    print(f"| {ceiling_label} | {top:,.0f} | 100% | |")
    print(f"| {adapter_label} | {parsed:,.0f} | {parsed / top:.0%} | |")
    print(f"| Inbox API worker: initial sync | {rate:,.0f} | {rate / top:.0%} | {rss:.0f} MiB |")


def command_line(
    benchmark: Callable[[int, str | None], Awaitable[None]], description: str | None
) -> None:
    """``benchmark(messages, database URL or None for SQLite)`` from the command line (the
    Gmail and Graph sync benchmarks take the same options)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="use a fresh database on the PostgreSQL server of tests/database.py",
    )
    args = parser.parse_args()
    asyncio.run(benchmark(args.messages, database.server_url() if args.postgres else None))


def main() -> None:
    command_line(run, __doc__.splitlines()[0] if __doc__ else None)


if __name__ == "__main__":
    main()
