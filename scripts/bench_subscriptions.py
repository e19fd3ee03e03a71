#!/usr/bin/env python
"""Subscriptions under load: commit-to-client latency of new mail, and idle subscriptions' memory.

Usage: .venv/bin/python scripts/bench_subscriptions.py [--idle 5000] [--messages 1000]
           [--interval 0.005] [--database-url postgres://...]

The server runs in this process (uvicorn, the production app, its event bus and change-log
tail), on a temporary SQLite database or a fresh database on the PostgreSQL server given (then
every event crosses LISTEN/NOTIFY). Then:

1. A separate client process opens ``--idle`` WebSocket connections, each with one
   ``messageEvents`` subscription of an owner that gets no mail; the server's RSS is read before
   and after (``/proc/self/status``): RSS per idle subscription.
2. With those still open, the Node ``graphql-ws`` client (tests/support/js, installed by
   scripts/install-node-deps) subscribes for another owner, and ``--messages`` new messages are
   applied one by one with ``sync.apply.apply_batch`` (as the sync worker writes them), every
   ``--interval`` seconds. Latency = arrival at the client - the change-log row's time (the
   row is inserted last in the transaction, right before COMMIT), same machine, same clock.

Prints a markdown table. Bounded by a 175 s deadline: opening subscriptions costs about 5 ms
of server CPU each, so 5,000 (the default) take under a minute on two cores, 10,000 about two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402 (after the path set-up, like the other scripts)
import uvicorn  # noqa: E402
import uvloop  # noqa: E402
import websockets  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from app.db import close_database, open_database  # noqa: E402
from app.models import Account, SyncState  # noqa: E402
from app.server import create_app  # noqa: E402
from app.services.owners import create_owner  # noqa: E402
from app.settings import Settings  # noqa: E402
from emulators.runner import free_port  # noqa: E402
from sync.apply import apply_batch  # noqa: E402
from sync.providers.records import Address, ChangeBatch, MessageRecord  # noqa: E402

NODE_CLIENT = ROOT / "tests" / "support" / "js" / "subscribe.mjs"
QUERY = "subscription { messageEvents { kind occurredAt messageId } }"
CONNECT_CONCURRENCY = 200
DEADLINE_SECONDS = 175


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- the idle client process -------------------------------------------------------------


async def hold_idle(url: str, token: str, count: int) -> None:
    """Open ``count`` subscribed connections, say "ready", hold them until stdin closes."""
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}})
    sockets: list[Any] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> None:
        async with gate:
            socket = await websockets.connect(
                url,
                subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                ping_interval=None,
                max_queue=4,
                open_timeout=120,
            )
            await socket.send(init)
            reply = json.loads(await socket.recv())
            if reply["type"] != "connection_ack":
                raise RuntimeError(f"not acknowledged: {reply}")
            await socket.send(subscribe)
            sockets.append(socket)

    await asyncio.gather(*(one() for _ in range(count)))
    print("ready", len(sockets), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


# --- the server side ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[Settings]:
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            yield Settings(data_dir=Path(tmp))
            return
        name = f"inbox_bench_{os.getpid()}_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(url)
        try:
            yield Settings(
                data_dir=Path(tmp),
                database_url=urlunsplit((parts.scheme, parts.netloc, "/" + name, "", "")),
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(settings)
    state: Any = cast(Starlette, app.app).state
    port = free_port()
    config = uvicorn.Config(  # the WebSocket options of `inbox-api serve`
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
        log_level="error",
        ws_per_message_deflate=settings.websocket_compression,
    )
    server = uvicorn.Server(config)
    async with state.background():
        task = asyncio.create_task(server.serve())
        await until(lambda: server.started, "the server", 10)
        gc.collect()
        gc.freeze()  # as `inbox-api serve` does after start-up
        try:
            yield f"ws://127.0.0.1:{port}/graphql", state
        finally:
            server.should_exit = True
            await task


async def until(condition: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


def message(n: int) -> MessageRecord:
    return MessageRecord(
        provider_id=f"bench-{n}",
        thread_provider_id=f"bench-thread-{n}",
        subject=f"Bench {n}",
        date=datetime(2024, 6, 1, tzinfo=UTC),
        from_addresses=(Address("Bench", "bench@example.com"),),
        snippet="bench",
        unread=True,
        label_ids=("INBOX", "UNREAD"),
    )


class GcPauses:
    """The longest garbage collection of each generation while measuring (ms)."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = (time.perf_counter() - self._started) * 1000
            generation = info["generation"]
            self.longest[generation] = max(self.longest[generation], pause)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace) -> list[tuple[str, str]]:
    async with database(args.database_url) as base:
        settings = base.model_copy(
            update={"max_connections_per_token": args.idle + 10, "embedded_worker": False}
        )
        await open_database(settings, apply_migrations=True)
        try:
            return await measure(settings, args)
        finally:
            await close_database()


async def measure(settings: Settings, args: argparse.Namespace) -> list[tuple[str, str]]:
    busy, issued = await create_owner("Busy", "busy@example.com")
    account = await Account.create(owner_id=busy.id, provider="gmail", address="busy@example.com")
    await SyncState.create(account_id=account.id)
    _, idle_token = await create_owner("Idle", "idle@example.com")

    async with serving(settings) as (url, state):
        changes = state.services.changes
        # Warm up: one subscription started and ended, so lazy start-up is not counted.
        warm = await websockets.connect(
            url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        )
        await warm.close()
        gc.collect()
        before = rss_kib()
        started = time.monotonic()
        idle = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--idle-client",
            url,
            idle_token.raw,
            str(args.idle),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert idle.stdout is not None
        assert idle.stdin is not None
        try:
            ready = await asyncio.wait_for(idle.stdout.readline(), DEADLINE_SECONDS * 0.8)
            if not ready.startswith(b"ready"):
                raise RuntimeError("the idle client failed")
            await until(lambda: changes.listener_count >= args.idle, "idle listeners", 60)
            opened_in = time.monotonic() - started
            gc.collect()
            after = rss_kib()
            pauses = GcPauses()
            gc.callbacks.append(pauses)
            try:
                latencies = await latency(url, issued.raw, account, state, args)
            finally:
                gc.callbacks.remove(pauses)
        finally:
            idle.stdin.close()
            await idle.wait()

    per_subscription = (after - before) / max(args.idle, 1)
    backend = "PostgreSQL (LISTEN/NOTIFY)" if settings.is_postgres else "SQLite (in-process bus)"
    return [
        ("database", backend),
        ("idle subscriptions held (one per connection)", f"{args.idle:,}"),
        ("time to open them", f"{opened_in:.1f} s"),
        ("server RSS before / after", f"{before / 1024:.1f} / {after / 1024:.1f} MiB"),
        ("RSS per idle subscription", f"{per_subscription:.1f} KiB"),
        ("messages, one per apply_batch", f"{len(latencies):,} every {args.interval * 1000:g} ms"),
        ("commit -> client latency p50", f"{statistics.median(latencies):.1f} ms"),
        ("commit -> client latency p90", f"{percentile(latencies, 0.90):.1f} ms"),
        ("commit -> client latency p99", f"{percentile(latencies, 0.99):.1f} ms"),
        ("commit -> client latency max", f"{max(latencies):.1f} ms"),
        (
            "longest GC pause meanwhile, gen 0 / 1 / 2",
            " / ".join(f"{pause:.1f}" for pause in pauses.longest) + " ms",
        ),
    ]


async def latency(
    url: str, token: str, account: Account, state: Any, args: argparse.Namespace
) -> list[float]:
    listening = state.services.changes.listener_count
    client = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_CLIENT),
        "--url",
        url,
        "--token",
        token,
        "--query",
        QUERY,
        "--count",
        str(args.messages),
        stdout=asyncio.subprocess.PIPE,
    )
    assert client.stdout is not None
    try:
        await until(
            lambda: state.services.changes.listener_count > listening, "the Node client", 30
        )
        arrivals: list[float] = []

        async def read() -> None:
            assert client.stdout is not None
            while len(arrivals) < args.messages:
                line = await client.stdout.readline()
                if not line:
                    raise RuntimeError("the Node client ended early")
                record = json.loads(line)
                if record["event"] == "next":
                    event = record["payload"]["data"]["messageEvents"]
                    written = datetime.fromisoformat(event["occurredAt"]).timestamp() * 1000
                    arrivals.append(record["at"] - written)

        reader = asyncio.create_task(read())
        for n in range(args.messages):
            await apply_batch(
                account.id, ChangeBatch(upserts=[message(n)]), events=state.services.events
            )
            await asyncio.sleep(args.interval)
        await asyncio.wait_for(reader, 30)
        return arrivals
    finally:
        if client.returncode is None:
            client.kill()
        await client.wait()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--idle-client":
        uvloop.run(hold_idle(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=5_000, help="idle subscriptions to hold")
    parser.add_argument("--messages", type=int, default=1_000, help="messages to time")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between them")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: SQLite)")
    args = parser.parse_args()
    if not NODE_CLIENT.parent.joinpath("node_modules", "graphql-ws").is_dir():
        sys.exit("bench_subscriptions: run scripts/install-node-deps first")
    # uvloop, as `inbox-api serve` runs (uvicorn picks it when installed).
    rows = uvloop.run(asyncio.wait_for(bench(args), DEADLINE_SECONDS))
    print("| metric | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
