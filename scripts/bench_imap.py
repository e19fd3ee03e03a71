#!/usr/bin/env python3
"""Benchmark the IMAP initial sync against a bare client, on one real Dovecot, in one run.

Run with the project's interpreter from the repository root (as root: the test Dovecot of
``tests.support.dovecot``, installed by ``scripts/install-dovecot``)::

    .venv/bin/python scripts/bench_imap.py [--messages 10000] [--idle-messages 100]

The mailbox: ``--messages`` corpus messages (``emulators.corpus``) each padded with a text
epilogue of 0-24 KB (about 15 KB a message on average, like TARGETS.md's 151 MB for 10,000),
APPENDed into INBOX. Each measurement runs in a child process of its own, so that its peak RSS
(VmHWM) is its own:

1. floor: ``imaplib`` (stdlib) SELECT + one ``UID FETCH 1:* (UID FLAGS INTERNALDATE
   RFC822.SIZE BODY.PEEK[])``, parsing nothing;
2. our client alone: the same FETCH through ``ImapConnection.stream``, parsing nothing;
3. the adapter: ``full_sync_page`` pages (500 messages), headers only, then with bodies;
   records built and dropped;
4. the adapter with a ``ProcessPoolExecutor`` parsing MIME on every core;
5. the engine: ``sync_account`` (adapter + ``sync.apply``) into a fresh SQLite database,
   bodies cached: the initial sync as a user sees it;

and new mail through IDLE: ``--idle-messages`` LMTP deliveries 200 ms apart, the delay from the
delivery's end to ``on_change``. Prints markdown tables. Not a test: absolute numbers depend on
the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Run as a file from any directory: the repository root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Project modules are imported where used: the floor's child process imports only imaplib,
# so its peak RSS is the bare client's own.
if TYPE_CHECKING:
    from sync.providers.imap import ImapAdapter, ImapEndpoint
    from tests.support.dovecot import Dovecot

USER = "bench@example.test"
PASSWORD = "bench-password"  # noqa: S105 (a throwaway test server's user)
FETCH_ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
SCENARIOS = {
    "imaplib": "bare client: imaplib, one UID FETCH, no parsing",
    "client": "our asyncio client, one UID FETCH, no parsing",
    "adapter-headers": "adapter full sync, headers only (records, no database)",
    "adapter": "adapter full sync with bodies (records, no database)",
    "adapter-pool": "adapter full sync, MIME parsed in a process pool",
    "engine": "engine initial sync into SQLite, bodies cached",
}


def padded_corpus(count: int, seed: int = 7) -> list[bytes]:
    from emulators.corpus import make_mailbox

    rng = random.Random(seed)  # noqa: S311 (a reproducible corpus, not a secret)
    line = b"Padding of the benchmark corpus, the way a long message carries more text.\r\n"
    return [
        raw + b"\r\n" + line * (rng.randint(0, 24_000) // len(line))
        for raw in make_mailbox(seed, count)
    ]


def fill(dovecot: Dovecot, count: int) -> int:
    corpus = padded_corpus(count)
    with dovecot.client(USER) as other:
        for start in range(0, count, 1000):
            other.append_many("INBOX", corpus[start : start + 1000])
    return sum(len(raw) for raw in corpus)


# -- the measured scenarios, each run in a child process --------------------------------------


def run_imaplib(args: argparse.Namespace) -> int:
    import ssl

    context = ssl.create_default_context(cafile=args.ca)
    client = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=context)
    client.login(USER, PASSWORD)
    client.select("INBOX")
    typ, data = client.uid("FETCH", "1:*", FETCH_ITEMS)
    client.logout()
    assert typ == "OK"
    return sum(1 for item in data if isinstance(item, tuple))


def _endpoint(args: argparse.Namespace) -> ImapEndpoint:
    from sync.providers.imap import ImapEndpoint, Security

    return ImapEndpoint(args.host, args.port, Security.TLS, USER)


def _context(args: argparse.Namespace) -> Any:
    import ssl

    return ssl.create_default_context(cafile=args.ca)


async def run_client(args: argparse.Namespace) -> int:
    from sync.providers.imap_connection import ImapConnection
    from vault import Secret

    connection = await ImapConnection.open(
        _endpoint(args), Secret(PASSWORD), ssl_context=_context(args)
    )
    await connection.run('SELECT "INBOX"')
    count = 0
    async for response in connection.stream(f"UID FETCH 1:* {FETCH_ITEMS}"):
        count += response.kind == "FETCH"
    await connection.logout()
    return count


async def run_adapter(args: argparse.Namespace, *, pool: bool, with_content: bool) -> int:
    from sync.providers.imap import ImapAdapter
    from vault import Secret

    executor = ProcessPoolExecutor(os.cpu_count() or 2) if pool else None
    adapter = ImapAdapter(
        _endpoint(args), Secret(PASSWORD), ssl_context=_context(args), executor=executor
    )
    count = 0
    token: str | None = None
    try:
        while True:
            batch = await adapter.full_sync_page(token, with_content=with_content)
            count += len(batch.upserts)
            if batch.next_page_token is None:
                return count
            token = batch.next_page_token
    finally:
        await adapter.aclose()
        if executor is not None:
            executor.shutdown()


async def run_engine(args: argparse.Namespace) -> int:
    from app.db import close_database, open_database
    from app.events import InProcessBus
    from app.models import Message
    from app.settings import Settings
    from app.types import Provider
    from sync.engine import sync_account
    from sync.providers.imap import ImapAdapter
    from tests.factories import make_account, make_owner
    from vault import Secret

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), embedded_worker=False)
        await open_database(settings, apply_migrations=True)
        try:
            owner = await make_owner()
            account = await make_account(owner.owner, provider=Provider.IMAP, address=USER)

            async def factory(_: Any) -> ImapAdapter:
                return ImapAdapter(_endpoint(args), Secret(PASSWORD), ssl_context=_context(args))

            started = time.perf_counter()
            outcome = await sync_account(account.id, factory, InProcessBus())
            args.elapsed = time.perf_counter() - started
            assert outcome.error_code is None, outcome
            return await Message.filter(account_id=account.id).count()
        finally:
            await close_database()


def child(args: argparse.Namespace) -> None:
    args.elapsed = None
    started = time.perf_counter()
    if args.scenario == "imaplib":
        count = run_imaplib(args)
    elif args.scenario == "client":
        count = asyncio.run(run_client(args))
    elif args.scenario == "engine":
        count = asyncio.run(run_engine(args))
    else:
        pool, headers_only = args.scenario == "adapter-pool", args.scenario == "adapter-headers"
        count = asyncio.run(run_adapter(args, pool=pool, with_content=not headers_only))
    elapsed = args.elapsed or time.perf_counter() - started
    print(json.dumps({"count": count, "seconds": elapsed, "rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited through exec
    from the parent that holds the corpus)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(dovecot: Dovecot, scenario: str) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        scenario,
        "--host",
        dovecot.host,
        "--port",
        str(dovecot.imaps_port),
        "--ca",
        str(dovecot.tls.ca_path),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- new mail through IDLE ---------------------------------------------------------------------


async def idle_latencies(dovecot: Dovecot, count: int) -> list[float]:
    from emulators.corpus import make_message
    from sync.providers.imap import ImapAdapter, ImapEndpoint, Security
    from vault import Secret

    adapter = ImapAdapter(
        ImapEndpoint(dovecot.host, dovecot.imaps_port, Security.TLS, USER),
        Secret(PASSWORD),
        ssl_context=dovecot.ssl_context(),
    )
    changes: asyncio.Queue[float] = asyncio.Queue()
    idling = asyncio.Event()

    async def on_change() -> None:
        changes.put_nowait(time.perf_counter())

    watcher = asyncio.create_task(adapter.watch(on_change, on_idle=idling.set))
    latencies: list[float] = []
    try:
        await asyncio.wait_for(idling.wait(), 10)
        rng = random.Random(3)  # noqa: S311 (a reproducible corpus, not a secret)
        for _ in range(count):
            raw = make_message(rng)
            await asyncio.to_thread(dovecot.deliver, USER, raw)
            delivered = time.perf_counter()
            noticed = await asyncio.wait_for(changes.get(), 10)
            latencies.append(noticed - delivered)
            await asyncio.sleep(0.2)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await adapter.aclose()
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--idle-messages", type=int, default=100)
    parser.add_argument("--child", choices=sorted(SCENARIOS), dest="scenario")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ca")
    args = parser.parse_args()
    if args.scenario:
        child(args)
        return

    from tests.support.dovecot import start_dovecot

    dovecot = start_dovecot()
    try:
        dovecot.add_user(USER, PASSWORD)
        started = time.perf_counter()
        total_bytes = fill(dovecot, args.messages)
        print(
            f"mailbox: {args.messages:,} messages, {total_bytes / 1e6:.0f} MB, "
            f"filled in {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores\n"
        )
        results = {scenario: measure(dovecot, scenario) for scenario in SCENARIOS}
        floor = results["imaplib"]
        floor_rate = floor["count"] / floor["seconds"]
        print("| run | messages | seconds | messages/s | x slower than floor | peak RSS |")
        print("|---|---|---|---|---|---|")
        for scenario, result in results.items():
            rate = result["count"] / result["seconds"]
            print(
                f"| {SCENARIOS[scenario]} | {result['count']:,} | {result['seconds']:.2f} | "
                f"{rate:,.0f} | {floor_rate / rate:.1f} | {result['rss_mib']:.0f} MiB |"
            )
        if args.idle_messages:
            latencies = asyncio.run(idle_latencies(dovecot, args.idle_messages))
            print(f"\nnew mail through IDLE: {len(latencies)} LMTP deliveries 200 ms apart\n")
            print("| p50 | p99 | max |")
            print("|---|---|---|")
            print(
                f"| {statistics.median(latencies):.2f} s | {percentile(latencies, 0.99):.2f} s "
                f"| {max(latencies):.2f} s |"
            )
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
