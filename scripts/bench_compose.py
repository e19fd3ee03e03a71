#!/usr/bin/env python3
"""Benchmark outgoing MIME with attachments: how long ``app.services.compose.build_mime`` takes
for one attachment of each size, and the longest stall of the event loop while it runs inline
versus in a worker thread (what ``app.services.send.compose_for`` does), measured by a task
that wakes every 5 ms.

Run with the project's interpreter:
``.venv/bin/python scripts/bench_compose.py [--sizes-mib 1,18] [--rounds N]``
(18 MiB is the default ``INBOX_API_MAX_ATTACHMENT_BYTES``). Prints a markdown table. Not a test:
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as a file from any directory: the repository root holds the app package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.services.compose import AttachmentPart, Draft, Recipient, build_mime

SENDER = Recipient("me@example.com")


def draft_with(size: int) -> Draft:
    attachment = AttachmentPart("file.bin", "application/octet-stream", os.urandom(size))
    return Draft(
        to=[Recipient("friend@example.com")], subject="s", text_body="x", attachments=[attachment]
    )


async def stall_during(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(seconds ``work`` took, longest gap between the ticker's wake-ups)."""
    longest, running = 0.0, True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    running = False
    await task
    return took, longest


async def measure(sizes: list[int], rounds: int) -> None:
    print("| attachment | MIME bytes | mode | build s (median) | longest loop stall ms (median) |")
    print("|---|---|---|---|---|")
    for size in sizes:
        draft = draft_with(size)
        raw, _ = build_mime(SENDER, draft)

        async def inline(draft: Draft = draft) -> object:
            return build_mime(SENDER, draft)

        async def threaded(draft: Draft = draft) -> object:
            return await asyncio.to_thread(build_mime, SENDER, draft)

        for mode, work in (("inline", inline), ("worker thread", threaded)):
            results = [await stall_during(work) for _ in range(rounds)]
            took = statistics.median(r[0] for r in results)
            stall = statistics.median(r[1] for r in results) * 1000
            print(f"| {size / 2**20:.0f} MiB | {len(raw)} | {mode} | {took:.2f} | {stall:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", default="1,18", help="attachment sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per size and mode")
    args = parser.parse_args()
    sizes = [int(float(part) * 2**20) for part in args.sizes_mib.split(",") if part.strip()]
    if not sizes or min(sizes) < 1 or args.rounds < 1:
        parser.error("give positive sizes and at least one round")
    asyncio.run(measure(sizes, args.rounds))


if __name__ == "__main__":
    main()
