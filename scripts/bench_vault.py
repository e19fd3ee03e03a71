#!/usr/bin/env python3
"""Benchmark the vault: seal and open per secret, and rewrapping many secrets after a rotation.

Run with the project's interpreter: ``.venv/bin/python scripts/bench_vault.py [--count N]``.
Prints a markdown table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Run as a file from any directory: the repository root holds the vault package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault import KeyRing, generate_key, open_sealed, rewrap, seal

PLAINTEXT_BYTES = 256  # about the size of an OAuth refresh token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="secrets per measurement")
    count = parser.parse_args().count
    if count < 1:
        parser.error("--count must be at least 1")

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


if __name__ == "__main__":
    main()
