#!/usr/bin/env python3
"""Benchmark the initial sync of a Microsoft Graph mailbox against the emulator's own serving rate.

Run with the project's interpreter from the repository root:
``.venv/bin/python scripts/bench_sync_graph.py [--messages 10000] [--postgres]``

In one run, with the Microsoft emulator in its own process (``python -m emulators.graph_emulator``,
https with a fresh test CA) holding one mailbox of ``--messages`` corpus messages spread over
five folders (Graph's budget of 10,000 requests per 10 minutes and mailbox is far from reached
by the three syncs, so they share it):

1. adapter only: ``GraphAdapter.full_sync_page`` with bodies to the last page (fetching and
   parsing into records, storing nothing); every request it sends is recorded;
2. ceiling: a bare httpx client sends exactly those requests again, at most 4 at a time (the
   adapter's limit, Graph's MailboxConcurrency; a JSON batch of attachment lists takes all 4, as
   the adapter's does), parsing nothing and storing nothing: what the
   emulator can serve for exactly the calls a sync makes;
3. Inbox API: the production worker process (``python -m app.worker``: the production adapters,
   the account's grant sealed in the vault and refreshed with MSAL) does the account's initial
   sync with bodies into a fresh database (SQLite by default, or the PostgreSQL server of
   ``tests/database.py``), timed from the moment the account is due to the moment its SyncState
   records the success; its peak RSS (VmHWM) is read before it is stopped.

Prints a markdown table. Not a test: absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as a file from any directory: the repository root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from app.services.vault_keys import configure_vault
from app.settings import Settings
from emulators.corpus import make_mailbox
from emulators.graph_testing import TEST_CLIENT_ID
from scripts.bench_sync import (
    bench_database,
    command_line,
    print_sync_table,
    timed_initial_sync,
)
from sync.providers.graph import GraphAdapter
from tests.factories import make_owner
from tests.sync.graph_harness import (
    RemoteGraph,
    connect_graph_account,
    graph_emulator_process,
    graph_environment,
    sign_in,
)
from vault import KeyRing, format_keyring_string, generate_key

ROOT = Path(__file__).resolve().parents[1]
USER = "bench@contoso.test"
SEED = 1
CONCURRENCY = 4  # GraphAdapter's default, Graph's MailboxConcurrency
FOLDERS = ("inbox", "inbox", "inbox", "archive", "sentitems", "Projects", "Receipts")


async def load_mailbox(remote: RemoteGraph, messages: int) -> None:
    """The bench user, two custom folders, and the corpus spread over the folders."""
    rng = random.Random(SEED)  # noqa: S311 (which folder a message lands in: no secret)
    async with remote.control() as control:
        (await control.post("/users", json={"address": USER})).raise_for_status()
        folders = {name: name for name in FOLDERS}
        for name in ("Projects", "Receipts"):
            created = await control.post(f"/users/{USER}/folders", json={"displayName": name})
            folders[name] = created.raise_for_status().json()["id"]
        slots = asyncio.Semaphore(8)

        async def deliver(mime: bytes) -> None:
            body = {
                "folder": folders[rng.choice(FOLDERS)],
                "mime": base64.b64encode(mime).decode("ascii"),
                "isRead": rng.random() < 0.6,
            }
            async with slots:
                (await control.post(f"/users/{USER}/messages", json=body)).raise_for_status()

        await asyncio.gather(*(deliver(mime) for mime in make_mailbox(SEED, messages)))


async def access_token(remote: RemoteGraph) -> str:
    async with remote.control() as control:
        issued = await control.post("/tokens", json={"user": USER, "clientId": TEST_CLIENT_ID})
    token: str = issued.raise_for_status().json()["accessToken"]
    return token


EventHooks = dict[str, list[Callable[[httpx.Request], Awaitable[None]]]]


def client(remote: RemoteGraph, event_hooks: EventHooks | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    return httpx.AsyncClient(
        verify=remote.context(),
        trust_env=False,
        timeout=60,
        limits=limits,
        event_hooks=event_hooks,
    )


async def adapter_only(remote: RemoteGraph, messages: int) -> tuple[float, list[httpx.Request]]:
    """Messages per second of the adapter's full sync alone (fetched and parsed, not stored),
    and every request it sent."""
    token = await access_token(remote)
    sent: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        sent.append(request)

    async def tokens(force_refresh: bool) -> str:
        return token

    async with client(remote, event_hooks={"request": [remember]}) as http:
        adapter = GraphAdapter(remote.base_url, tokens, http=http)
        started, count, page_token = time.perf_counter(), 0, None
        while True:
            batch = await adapter.full_sync_page(page_token, with_content=True)
            count += len(batch.upserts)
            page_token = batch.next_page_token
            if page_token is None:
                break
        elapsed = time.perf_counter() - started
    if count != messages:
        raise RuntimeError(f"the adapter listed {count} of {messages} messages")
    return count / elapsed, sent


async def bare_replay(remote: RemoteGraph, requests: list[httpx.Request], messages: int) -> float:
    """Messages per second a plain client gets for the same requests, 4 at a time (a JSON
    batch takes all 4 slots, as the adapter's does: Graph runs 4 of its requests at once)."""
    slots = asyncio.Semaphore(CONCURRENCY)
    batch_turn = asyncio.Lock()
    async with client(remote) as http:

        async def send(request: httpx.Request) -> None:
            response = await http.request(
                request.method, request.url, content=request.content, headers=request.headers
            )
            response.raise_for_status()
            await response.aread()
            if request.method == "POST" and any(
                inner["status"] >= 400 for inner in response.json()["responses"]
            ):
                raise RuntimeError("a request inside a replayed batch failed")

        async def send_in_turn(request: httpx.Request) -> None:
            if request.method == "GET":
                async with slots:
                    await send(request)
                return
            async with batch_turn:
                for _ in range(CONCURRENCY):
                    await slots.acquire()
            try:
                await send(request)
            finally:
                for _ in range(CONCURRENCY):
                    slots.release()

        started = time.perf_counter()
        await asyncio.gather(*(send_in_turn(request) for request in requests))
        return messages / (time.perf_counter() - started)


async def worker_sync(
    remote: RemoteGraph, settings: Settings, keys: str, messages: int
) -> tuple[float, float]:
    """(messages per second, peak RSS in MiB) of a worker process's initial sync."""
    env = {
        **os.environ,
        **graph_environment(remote.base_url, remote.tenant_id, remote.ca_path),
        "INBOX_API_DATABASE_URL": settings.effective_database_url,
        "INBOX_API_DATA_DIR": str(settings.data_dir),
        "INBOX_API_VAULT_KEYS": keys,
        "INBOX_API_EMBEDDED_WORKER": "false",
        "INBOX_API_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "app.worker"]
    worker = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
    try:
        await asyncio.sleep(2)  # the worker's start-up is not part of the sync
        owner = await make_owner()
        grant = await sign_in(remote.base_url, remote.tenant_id, remote.ca_path, USER)
        account = await connect_graph_account(owner.owner, USER, grant)
        return await timed_initial_sync(worker, account, messages)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), timeout=30)


async def run(messages: int, database_url: str | None) -> None:
    ring = KeyRing([generate_key()])
    configure_vault(ring)
    async with bench_database(database_url is not None) as settings:
        with graph_emulator_process(settings.data_dir / "tls") as remote:
            print(f"loading {messages} messages into the emulator...", file=sys.stderr)
            await load_mailbox(remote, messages)
            parsed, requests = await adapter_only(remote, messages)
            ceiling = await bare_replay(remote, requests, messages)
            keys = format_keyring_string(ring)
            rate, rss = await worker_sync(remote, settings, keys, messages)
    backend = "PostgreSQL" if database_url else "SQLite"
    print_sync_table(
        f"Initial sync of {messages} Graph messages (bodies cached), {backend}",
        (
            f"ceiling: bare httpx, the adapter's {len(requests)} requests, {CONCURRENCY} at a time",
            ceiling,
        ),
        ("GraphAdapter alone: fetch and parse", parsed),
        (rate, rss),
    )


def main() -> None:
    command_line(run, __doc__.splitlines()[0] if __doc__ else None)


if __name__ == "__main__":
    main()
