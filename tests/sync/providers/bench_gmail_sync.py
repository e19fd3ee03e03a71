"""Full-sync throughput of the Gmail adapter against the emulator in its own process.

    .venv/bin/python -m tests.sync.providers.bench_gmail_sync [--messages 2000] [--repeat 3]

Each run starts a fresh ``python -m emulators.gmail_emulator`` (its own process, so server and
client do not share a GIL; fresh, because the emulator's quota meter sums its one-minute window
on every call and slows down as it fills), loads a corpus and times a full sync of it:

- ``GmailAdapter.full_sync_page`` to the last page (batch endpoint, 50 calls per batch), raw and
  metadata formats, with 1, 4 and 8 batch requests in flight;
- the alternative the adapter was measured against and did not adopt: the same pages fetched
  with one ``messages.get`` per message, 8 and 16 in flight, parsed into the same records.

Not a test (pytest does not collect ``bench_*``); prints one line per setting: messages/s, and
CPU time per message in the client and in the emulator (steadier than wall time on a busy box).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import free_port
from sync.providers.gmail import GmailAdapter
from sync.providers.gmail_records import message_record
from sync.providers.records import MessageRecord

ME = "bench@example.com"


@contextmanager
def emulator_process(messages: int) -> Iterator[tuple[str, int]]:
    """(base URL, process id) of a fresh emulator holding ``messages`` corpus messages."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "emulators.gmail_emulator",
        f"--port={port}",
        f"--user={ME}",
        f"--messages={messages}",
        "--client=bench:secret:http://127.0.0.1/cb",
        "--units-per-minute=1000000000",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=os.environ.copy())
    try:
        assert process.stdout is not None
        json.loads(process.stdout.readline())  # the URLs line: the app is built
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base_url + "/_emulator/stats").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def access_token(base_url: str) -> str:
    response = httpx.post(
        base_url + "/_emulator/tokens",
        json={"email": ME, "client_id": "bench", "scopes": [SCOPE_FULL]},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def adapter_full_sync(
    base_url: str, token: str, *, concurrency: int, with_content: bool
) -> int:
    async def token_source(force_refresh: bool) -> str:
        return token

    adapter = GmailAdapter(base_url, token_source, concurrency=concurrency)
    count, page_token = 0, None
    try:
        while True:
            batch = await adapter.full_sync_page(page_token, with_content=with_content)
            count += len(batch.upserts)
            page_token = batch.next_page_token
            if page_token is None:
                return count
    finally:
        await adapter.aclose()


async def single_calls_full_sync(base_url: str, token: str, *, in_flight: int) -> int:
    """Page ids with messages.list, fetch each ``format=raw`` with its own request."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=in_flight)
    api = "/gmail/v1/users/me/messages"
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        slots = asyncio.Semaphore(in_flight)

        async def fetch(message_id: str) -> MessageRecord:
            async with slots:
                response = await client.get(f"{api}/{message_id}", params={"format": "raw"})
            return message_record(response.json(), with_content=True)

        count, page_token = 0, None
        while True:
            params: dict[str, Any] = {"maxResults": 500, "includeSpamTrash": "true"}
            if page_token:
                params["pageToken"] = page_token
            listing = (await client.get(api, params=params)).json()
            ids = [m["id"] for m in listing.get("messages", [])]
            count += len(await asyncio.gather(*(fetch(message_id) for message_id in ids)))
            page_token = listing.get("nextPageToken")
            if not page_token:
                return count


async def timed(
    label: str, messages: int, run: Callable[[str, str], Awaitable[int]], repeat: int
) -> None:
    """Best and worst rate of ``repeat`` runs, each against a fresh emulator: the emulator's
    quota meter sums its one-minute window on every call, so a warm one slows down. Also the
    CPU milliseconds per message of client and emulator, which a busy machine distorts less."""
    rates, client_cpu, server_cpu = [], [], []
    for _ in range(repeat):
        with emulator_process(messages) as (base_url, pid):
            token = access_token(base_url)
            server_start, client_start = cpu_seconds(pid), time.process_time()
            start = time.perf_counter()
            count = await run(base_url, token)
            rates.append(count / (time.perf_counter() - start))
            client_cpu.append((time.process_time() - client_start) / count * 1000)
            server_cpu.append((cpu_seconds(pid) - server_start) / count * 1000)
    print(
        f"{label:<44} {count:>6} messages  best {max(rates):>5.0f}/s  worst {min(rates):>5.0f}/s"
        f"  CPU/message: client {min(client_cpu):.2f} ms, emulator {min(server_cpu):.2f} ms"
    )


async def main(messages: int, repeat: int) -> None:
    for concurrency in (1, 4, 8):
        for with_content in (True, False):
            fmt = "raw" if with_content else "metadata"

            async def adapter_run(
                base_url: str, token: str, c: int = concurrency, w: bool = with_content
            ) -> int:
                return await adapter_full_sync(base_url, token, concurrency=c, with_content=w)

            label = f"adapter (batch), {fmt}, {concurrency} in flight"
            await timed(label, messages, adapter_run, repeat)
    for in_flight in (8, 16):

        async def single_run(base_url: str, token: str, n: int = in_flight) -> int:
            return await single_calls_full_sync(base_url, token, in_flight=n)

        label = f"single messages.get, raw, {in_flight} in flight"
        await timed(label, messages, single_run, repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.repeat))
