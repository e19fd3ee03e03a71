#!/usr/bin/env python3
"""Run every ``scripts/bench_*.py`` with bounded sizes and times; write ``docs/benchmarks.md``.

What ``scripts/bench`` runs (after installing what the benchmarks need). Each benchmark runs in
its own process, one after another (they would distort each other's figures), with the
arguments below and a time limit; its markdown tables go into the page under its heading, with
how long it took. A benchmark that fails or overruns its limit is reported as such on the page
(with the end of its output) and makes the exit status 1; the others still run. A benchmark
script with no entry here is run with its defaults, so a new one is never left out silently.

The page starts with the machine: CPU model, cores, memory, Python, operating system, date and
commit, because absolute figures mean little without them (compare ratios between machines).
Not a test: nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    arguments: tuple[str, ...]
    limit_seconds: float

    @property
    def script(self) -> Path:
        return ROOT / "scripts" / f"bench_{self.name}.py"


# Sizes keep the whole run under ten minutes on two idle cores; each limit is about twice what
# its benchmark takes there, so a busy machine still finishes most of them. For the full sizes
# of TARGETS.md (10,000-message mailboxes, 10,000 idle subscriptions) run a script alone with
# its defaults.
KNOWN = (
    Benchmark(
        "read",
        "Read path: latest 50, nested threads x messages and fragments, each against its floor,"
        " compiled and graphql-core execution",
        ("--messages", "10000", "--seconds", "6", "--connections", "16", "--compare-fast-path"),
        300,
    ),
    Benchmark("sync", "Gmail initial sync against the emulator", ("--messages", "2000"), 150),
    Benchmark(
        "sync_graph",
        "Microsoft Graph initial sync against the emulator",
        ("--messages", "2000"),
        150,
    ),
    Benchmark(
        "imap",
        "IMAP initial sync and new mail (IDLE) on a real Dovecot",
        ("--messages", "3000", "--idle-messages", "30"),
        180,
    ),
    Benchmark(
        "subscriptions",
        "Subscriptions: new-mail latency and idle memory",
        ("--idle", "2000", "--messages", "200"),
        120,
    ),
    Benchmark("auth", "Token authentication per request", ("--count", "5000"), 60),
    Benchmark(
        "compose", "Composing a message with attachments: build time and event-loop stalls", (), 60
    ),
    Benchmark(
        "vault",
        "Vault: seal, open, rewrap and a rotation",
        ("--count", "10000", "--db-rows", "10000"),
        60,
    ),
)


@dataclass(frozen=True)
class Outcome:
    benchmark: Benchmark
    seconds: float
    output: str
    failure: str | None


def discover() -> list[Benchmark]:
    """The known benchmarks whose script exists, then any other ``bench_*.py`` with defaults."""
    present = {path.stem.removeprefix("bench_") for path in (ROOT / "scripts").glob("bench_*.py")}
    chosen = [b for b in KNOWN if b.name in present]
    known = {b.name for b in KNOWN}
    chosen += [Benchmark(n, f"bench_{n}.py", (), 120) for n in sorted(present - known)]
    return chosen


def run(benchmark: Benchmark) -> Outcome:
    command = [sys.executable, str(benchmark.script), *benchmark.arguments]
    print(f"bench: {' '.join(command[1:])} (at most {benchmark.limit_seconds:.0f} s)", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 (the project's own scripts)
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=benchmark.limit_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        output = _text(expired.stdout) + _text(expired.stderr)
        seconds = time.monotonic() - started
        return Outcome(benchmark, seconds, output, f"did not finish in {seconds:.0f} s")
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return Outcome(benchmark, seconds, done.stdout + done.stderr, f"exit {done.returncode}")
    return Outcome(benchmark, seconds, done.stdout, None)


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def machine(load_at_start: tuple[float, float, float]) -> list[tuple[str, str]]:
    model = "unknown"
    memory = "unknown"
    with Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with Path("/proc/meminfo").open(encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        ("CPU", model),
        ("cores", str(os.cpu_count())),
        ("memory", memory),
        ("Python", platform.python_version()),
        ("system", platform.platform()),
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit or "unknown"),
        # Other work on the machine slows every figure: say how busy it was.
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_at_start)),
    ]


def page(outcomes: list[Outcome], load_at_start: tuple[float, float, float]) -> str:
    total = sum(o.seconds for o in outcomes)
    lines = [
        "# Benchmarks",
        "",
        "<!-- Written by `scripts/bench`; run it again rather than editing this page. -->",
        "",
        "Each benchmark ran alone, one after another, on this machine. Absolute figures depend "
        "on the machine and its load: compare the ratios within a table. The targets these "
        "figures are measured against are in the project's TARGETS.md; each script's docstring "
        "says exactly what it measures.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in machine(load_at_start)),
        "",
        f"Whole run: {total:.0f} s.",
    ]
    for outcome in outcomes:
        benchmark = outcome.benchmark
        command = " ".join(["scripts/" + benchmark.script.name, *benchmark.arguments])
        lines += ["", f"## {benchmark.title}", "", f"`{command}` ({outcome.seconds:.0f} s)", ""]
        if outcome.failure is None:
            lines.append(outcome.output.strip())
        else:
            tail = "\n".join(outcome.output.strip().splitlines()[-20:])
            lines += [f"**FAILED: {outcome.failure}.** The end of its output:", "", "```"]
            lines += [tail, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    args = parser.parse_args()
    benchmarks = discover()
    if args.only:
        benchmarks = [b for b in benchmarks if b.name in args.only]
    load_at_start = os.getloadavg()
    outcomes = [run(benchmark) for benchmark in benchmarks]
    args.output.write_text(page(outcomes, load_at_start), encoding="utf-8")
    failed = [o.benchmark.name for o in outcomes if o.failure is not None]
    print(f"bench: wrote {args.output}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
