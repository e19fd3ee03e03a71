#!/usr/bin/env python
"""Per-request cost of authentication: checksum + SHA-256 + lookup, cached and uncached.

Usage: .venv/bin/python scripts/bench_auth.py [--database-url postgres://...] [--count N]
Without a URL it uses a temporary SQLite database. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.auth.authenticator import TokenAuthenticator
from app.auth.tokens import is_well_formed, token_digest
from app.db import close_database, open_database
from app.services.owners import create_owner
from app.settings import Settings


def _per_call_us(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:.1f}"


async def bench(url: str | None, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=url, data_dir=Path(tmp))  # type: ignore[arg-type]
        await open_database(settings, apply_migrations=True)
        try:
            _, issued = await create_owner("Bench", "bench@example.com")
            raw = issued.raw
            rows: list[tuple[str, list[float]]] = []

            samples = []
            for _ in range(count):
                start = time.perf_counter()
                is_well_formed(raw)
                token_digest(raw)
                samples.append(time.perf_counter() - start)
            rows.append(("checksum + SHA-256 only", samples))

            uncached = TokenAuthenticator(cache_ttl=0)
            samples = []
            for _ in range(count):
                start = time.perf_counter()
                assert await uncached.authenticate(raw) is not None
                samples.append(time.perf_counter() - start)
            rows.append(("authenticate, uncached (DB lookup)", samples))

            cached = TokenAuthenticator(cache_ttl=3600)
            await cached.authenticate(raw)
            samples = []
            for _ in range(count):
                start = time.perf_counter()
                assert await cached.authenticate(raw) is not None
                samples.append(time.perf_counter() - start)
            rows.append(("authenticate, cached", samples))
        finally:
            await close_database()
    backend = "PostgreSQL" if settings.is_postgres else "SQLite"
    print(f"| step ({backend}, median of {count}) | µs per request |")
    print("|---|---:|")
    for name, values in rows:
        print(f"| {name} | {_per_call_us(values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(bench(args.database_url, args.count))


if __name__ == "__main__":
    main()
