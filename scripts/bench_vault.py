#!/usr/bin/env python3
"""Benchmark the vault: seal and open per secret, rewrapping many secrets after a rotation, and
a whole rotation of credential rows in a temporary SQLite database (``app.services.rotation``).

Run with the project's interpreter:
``.venv/bin/python scripts/bench_vault.py [--count N] [--db-rows N] [--batch-size N]``
(``--db-rows 0`` skips the database). Prints markdown tables. Not a test: numbers depend on the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a file from any directory: the repository root holds the vault package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault import KeyRing, generate_key, open_sealed, rewrap, seal

PLAINTEXT_BYTES = 256  # about the size of an OAuth refresh token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="secrets per measurement")
    parser.add_argument("--db-rows", type=int, default=10_000, help="credential rows to rotate")
    parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction")
    args = parser.parse_args()
    count = args.count
    if count < 1:
        parser.error("--count must be at least 1")
    if args.db_rows < 0 or args.batch_size < 1:
        parser.error("--db-rows must be at least 0 and --batch-size at least 1")

    ring = KeyRing([generate_key("k1")])
    plaintext = b"r" * PLAINTEXT_BYTES
    associated_data = [f"account:{n}:oauth_refresh_token".encode() for n in range(count)]

    seal_ns, open_ns, blobs = [], [], []
    for ad in associated_data:
        started = time.perf_counter_ns()
        blob = seal(ring, plaintext, ad)
        sealed = time.perf_counter_ns()
        open_sealed(ring, blob, ad)
        opened = time.perf_counter_ns()
        seal_ns.append(sealed - started)
        open_ns.append(opened - sealed)
        blobs.append(blob)
    both_ns = [s + o for s, o in zip(seal_ns, open_ns, strict=True)]

    ring = ring.with_key(generate_key("k2"), primary=True)
    rewrap_started = time.perf_counter()
    for blob, ad in zip(blobs, associated_data, strict=True):
        rewrap(ring, blob, ad)
    rewrap_seconds = time.perf_counter() - rewrap_started

    rows: list[tuple[str, int, float, float]] = [
        ("seal", count, statistics.median(seal_ns) / 1000, sum(seal_ns) / 1e9),
        ("open_sealed", count, statistics.median(open_ns) / 1000, sum(open_ns) / 1e9),
        ("seal + open_sealed", count, statistics.median(both_ns) / 1000, sum(both_ns) / 1e9),
        ("rewrap (k1 -> k2)", count, rewrap_seconds / count * 1e6, rewrap_seconds),
    ]
    print(f"{PLAINTEXT_BYTES}-byte secrets, Python {sys.version.split()[0]}\n")
    print("| operation | secrets | per secret (µs) | total (s) |")
    print("|---|---:|---:|---:|")
    for name, secrets, per_secret_us, total_s in rows:
        print(f"| {name} | {secrets:,} | {per_secret_us:.1f} | {total_s:.3f} |")
    print("\nper secret: median for seal/open, mean (total / secrets) for rewrap")
    if args.db_rows:
        asyncio.run(bench_database_rotation(args.db_rows, args.batch_size))


async def bench_database_rotation(rows: int, batch_size: int) -> None:
    """Rotate ``rows`` sealed credentials in a fresh SQLite database, batch by batch."""
    from app.db import close_database, open_database
    from app.models import Account, Credential, Owner
    from app.services.credentials import associated_data
    from app.services.rotation import rewrap_credentials
    from app.settings import Settings
    from app.types import CredentialKind, Provider

    kinds = (CredentialKind.OAUTH_REFRESH_TOKEN, CredentialKind.OAUTH_ACCESS_TOKEN)
    ring = KeyRing([generate_key("k1")])
    with tempfile.TemporaryDirectory() as data_dir:
        await open_database(Settings(data_dir=Path(data_dir)), apply_migrations=True)
        try:
            owner = await Owner.create(name="bench", email="bench@example.com")
            accounts = (rows + len(kinds) - 1) // len(kinds)
            await Account.bulk_create(
                [
                    Account(owner=owner, provider=Provider.GMAIL, address=f"u{n}@example.com")
                    for n in range(accounts)
                ],
                batch_size=1000,
            )
            account_ids = (
                await Account.filter(owner=owner).order_by("id").values_list("id", flat=True)
            )
            pairs = [(a, k) for a in account_ids for k in kinds][:rows]
            await Credential.bulk_create(
                [
                    Credential(
                        account_id=a,
                        kind=k,
                        ciphertext=seal(ring, b"r" * PLAINTEXT_BYTES, associated_data(a, k)),
                        key_id=ring.primary_id,
                    )
                    for a, k in pairs
                ],
                batch_size=1000,
            )
            ring = ring.with_key(generate_key("k2"), primary=True)
            started = time.perf_counter()
            report = await rewrap_credentials(ring, batch_size=batch_size)
            seconds = time.perf_counter() - started
            assert report.rewrapped == rows == await Credential.filter(key_id="k2").count()
        finally:
            await close_database()
    print(f"\nrotation through app.services.rotation, SQLite, batches of {batch_size}\n")
    print("| credential rows | total (s) | rows/s | per row (µs) |")
    print("|---:|---:|---:|---:|")
    print(f"| {rows:,} | {seconds:.3f} | {rows / seconds:,.0f} | {seconds / rows * 1e6:.1f} |")


if __name__ == "__main__":
    main()
