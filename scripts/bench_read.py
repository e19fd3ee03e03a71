"""Read-path benchmark: three GraphQL queries, each against its own hand-written floor endpoint.

    .venv/bin/python scripts/bench_read.py [--messages 10000] [--seconds 10] [--connections 16]
                                           [--rounds 3] [--compare-fast-path]
                                           [--queries latest,nested,...]

Seeds N messages (threads of five) in a temporary SQLite database, then starts, each in its
own process: the real server (``uvicorn app.server:create_app_from_environment``, one worker,
scope checks and usage logging on, the compiled path on), with ``--compare-fast-path`` the same
server with ``INBOX_API_FAST_PATH=false`` (graphql-core only), and the floor server
(``scripts/read_floor.py``: plain Starlette, the same token authentication, the same SQL
statements, the same JSON encoded with orjson). Before measuring, each query is asked once of
every server and the floor's body must equal the GraphQL answer byte for byte (re-encoded with
orjson, keys in the answer's order): a floor cannot be cheaper by doing less.

A load generator in another process (a minimal keep-alive HTTP/1.1 client, so it costs the
servers as little CPU as possible) then keeps ``--connections`` requests in flight against
each server and query for ``--seconds`` in all, split into ``--rounds`` rounds that take the
servers in turn (rotating which goes first; a two-second warm-up before the first round, half
a second before the others), so that a change in the machine's load lands on every server
alike rather than on whichever was measured then. The script prints requests/s, p50 and p99
of each as a markdown table, with the ratios to the query's floor measured in the same run.

The queries (the same eight message fields in each):

- latest: the latest 50 messages of one account (id, subject, from, to, snippet, date,
  labels, unread);
- nested: the latest 20 threads of the account, each with its latest 5 messages;
- fragments: two aliased lists of 25 (unread; in one folder) sharing a named fragment, the
  second with an inline fragment adding ``starred``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGE_FIELDS = (
    "id subject from { name address } to { name address } snippet date labels { name } unread"
)
QUERIES = {
    "latest": f"""query Latest($account: ID!) {{
  messages(first: 50, filter: {{accountId: $account}}) {{ nodes {{ {MESSAGE_FIELDS} }} }}
}}""",
    "nested": f"""query Nested($account: ID!) {{
  threads(first: 20, filter: {{accountId: $account}}) {{
    nodes {{ id subject lastMessageAt messages(first: 5) {{ nodes {{ {MESSAGE_FIELDS} }} }} }}
  }}
}}""",
    "fragments": f"""query Fragments($account: ID!, $folder: ID!) {{
  unread: messages(first: 25, filter: {{accountId: $account, unread: true}}) {{
    nodes {{ ...Row }}
  }}
  filed: messages(first: 25, filter: {{accountId: $account, folderId: $folder}}) {{
    nodes {{ ...Row ... on Message {{ starred }} }}
  }}
}}
fragment Row on Message {{ {MESSAGE_FIELDS} }}""",
}
TITLES = {
    "latest": "latest 50 messages",
    "nested": "20 threads x latest 5 messages",
    "fragments": "2 aliased lists of 25, named + inline fragments",
}
FLOOR = "floor (Starlette + orjson)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- seeding ---------------------------------------------------------------------------------


async def seed(data_dir: Path, count: int) -> tuple[str, dict[str, str]]:
    """A token and the queries' variables, with ``count`` cached messages in four folders and
    threads of five messages."""
    from tortoise import Tortoise

    from app.db import open_database
    from app.models import Account, Folder, Message, MessageLabel, Thread
    from app.services.owners import create_owner
    from app.settings import Settings
    from app.types import FolderRole, Provider
    from resolvers.ids import encode_id

    settings = Settings(data_dir=data_dir, embedded_worker=False)
    await open_database(settings, apply_migrations=True)
    owner, issued = await create_owner("Bench Owner", "bench@example.com")
    account = await Account.create(
        owner_id=owner.id, provider=Provider.GMAIL, address="me@example.com"
    )
    folders = [
        await Folder.create(
            account_id=account.id, provider_id=pid, name=name, role=role, total_count=count
        )
        for pid, name, role in (
            ("INBOX", "Inbox", FolderRole.INBOX),
            ("IMPORTANT", "Important", FolderRole.IMPORTANT),
            ("Label_1", "Receipts", FolderRole.CUSTOM),
            ("Label_2", "Travel", FolderRole.CUSTOM),
        )
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    await Thread.bulk_create(
        [
            Thread(
                account_id=account.id,
                provider_id=f"t{n // 5}",
                subject=f"Subject number {n} about the quarterly plan",
                snippet=f"Snippet of message {n}",
                last_message_at=start + timedelta(minutes=min(n + 4, count - 1)),
                message_count=min(5, count - n),
            )
            for n in range(0, count, 5)
        ],
        batch_size=1000,
    )
    threads = dict(await Thread.filter(account_id=account.id).values_list("provider_id", "id"))
    for first in range(0, count, 1000):
        batch = [
            Message(
                account_id=account.id,
                thread_id=threads[f"t{n // 5}"],
                provider_id=f"m{n}",
                subject=f"Subject number {n} about the quarterly plan",
                from_addresses=[{"name": f"Sender {n % 97}", "email": f"s{n % 97}@example.com"}],
                to_addresses=[{"name": "Me", "email": "me@example.com"}],
                date=start + timedelta(minutes=n),
                snippet=f"Snippet of message {n}: a line or two of preview text for the list",
                unread=n % 3 == 0,
                starred=n % 7 == 0,
                label_ids=["INBOX"] + (["Label_1"] if n % 5 == 0 else []),
            )
            for n in range(first, min(first + 1000, count))
        ]
        await Message.bulk_create(batch)
    ids = await Message.filter(account_id=account.id).values_list("id", "label_ids")
    by_provider = {folder.provider_id: folder.id for folder in folders}
    links = [
        MessageLabel(message_id=mid, folder_id=by_provider[pid])
        for mid, labels in ids
        for pid in labels
    ]
    await MessageLabel.bulk_create(links, batch_size=1000)
    await Tortoise.close_connections()
    variables = {
        "account": encode_id("Account", account.id),
        "folder": encode_id("Folder", by_provider["Label_1"]),
    }
    return issued.raw, variables


# --- the load generator ------------------------------------------------------------------------


async def _one_connection(
    port: int, request: bytes, deadline: float, warmup_until: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    failures = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                failures += 1
            if started >= warmup_until:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return failures


@dataclass(frozen=True)
class Round:
    """One round of load against one server: ``warmup`` seconds unmeasured, then ``seconds``."""

    port: int
    path: str
    token: str
    payload: str
    seconds: float
    connections: int
    warmup: float


async def load(one: Round) -> dict[str, Any]:
    """Every latency of one round."""
    port, path, token, payload = one.port, one.path, one.token, one.payload.encode()
    seconds, connections, warmup = one.seconds, one.connections, one.warmup
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    now = time.perf_counter()
    latencies: list[float] = []
    failures = await asyncio.gather(
        *(
            _one_connection(port, request, now + warmup + seconds, now + warmup, latencies)
            for _ in range(connections)
        )
    )
    return {"seconds": seconds, "latencies": latencies, "failures": sum(failures)}


def summary(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Requests/s, p50 and p99 over the measured seconds of every round of one server."""
    latencies = sorted(latency for one in rounds for latency in one["latencies"])
    seconds = sum(one["seconds"] for one in rounds)
    return {
        "requests_per_second": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "failures": float(sum(one["failures"] for one in rounds)),
    }


# --- orchestration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    target: str
    fast_path: str
    floor: bool = False

    def path(self, query: str) -> str:
        return f"/floor/{query}" if self.floor else "/graphql"


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def start(server: Server, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 (uvicorn serving this project)
        [
            sys.executable,
            "-m",
            "uvicorn",
            server.target,
            "--factory",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**env, "INBOX_API_FAST_PATH": server.fast_path},
        cwd=ROOT,
    )
    return process, port


def ask_once(port: int, path: str, token: str, payload: bytes) -> bytes:
    """One request with the standard library: the body of a 200 answer."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=payload,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}: {body[:300]!r}")
    return body


def check_floor(query: str, answers: dict[str, bytes]) -> None:
    """Every GraphQL answer has data and no errors, and the floor sends exactly those bytes."""
    floor = answers[FLOOR]
    for name, body in answers.items():
        if name == FLOOR:
            continue
        parsed = orjson.loads(body)
        if parsed.get("errors") or not parsed.get("data"):
            raise RuntimeError(f"{name} answered {query} with {body[:300]!r}")
        if orjson.dumps(parsed) != floor:
            raise RuntimeError(f"the {query} floor does not answer what {name} answers")


def run_load(one: Round) -> dict[str, Any]:
    """``load(one)`` in another process (this script, started again as the load generator)."""
    command = [sys.executable, __file__, "load", json.dumps(asdict(one))]
    out = subprocess.run(  # noqa: S603 (this script, started again as the load generator)
        command, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def measure(
    query: str,
    servers: list[tuple[Server, int]],
    token: str,
    payload: bytes,
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """Each server in ``args.rounds`` rounds, interleaved and in a rotating order, so that a
    change in the machine's load lands on every server alike."""
    rounds: dict[str, list[dict[str, Any]]] = {server.name: [] for server, _ in servers}
    for number in range(args.rounds):
        turn = number % len(servers)
        for server, port in servers[turn:] + servers[:turn]:
            one = Round(
                port,
                server.path(query),
                token,
                payload.decode(),
                args.seconds / args.rounds,
                args.connections,
                warmup=2.0 if number == 0 else 0.5,
            )
            rounds[server.name].append(run_load(one))
    return {server.name: summary(rounds[server.name]) for server, _ in servers}


def print_table(query: str, results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    floor = results[FLOOR]
    print(
        f"\n{query}: {TITLES[query]} ({args.messages} messages, {args.connections} connections, "
        f"{args.seconds:g} s)\n"
    )
    print("| endpoint | requests/s | p50 ms | p99 ms | failures | req/s vs floor | p99 vs floor |")
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {result['requests_per_second']:.0f} | {result['p50_ms']:.1f} | "
            f"{result['p99_ms']:.1f} | {result['failures']:.0f} | "
            f"{result['requests_per_second'] / floor['requests_per_second']:.2f} | "
            f"{result['p99_ms'] / floor['p99_ms']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure each server in this many interleaved rounds of seconds/rounds each",
    )
    parser.add_argument(
        "--compare-fast-path",
        action="store_true",
        help="also measure the server with INBOX_API_FAST_PATH=false (graphql-core only)",
    )
    parser.add_argument(
        "--queries",
        default=",".join(QUERIES),
        help=f"which queries to measure, comma-separated (default: {','.join(QUERIES)})",
    )
    args = parser.parse_args()
    queries = [name for name in args.queries.split(",") if name]
    unknown = set(queries) - set(QUERIES)
    if unknown:
        parser.error(f"unknown queries: {', '.join(sorted(unknown))}")
    servers = [Server("GraphQL (Strawberry)", "app.server:create_app_from_environment", "true")]
    if args.compare_fast_path:
        servers.append(
            Server("GraphQL, fast_path off", "app.server:create_app_from_environment", "false")
        )
    servers.append(Server(FLOOR, "scripts.read_floor:floor_from_environment", "true", floor=True))
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        data_dir = Path(tmp)
        token, variables = asyncio.run(seed(data_dir, args.messages))
        env = {
            **os.environ,
            "INBOX_API_DATA_DIR": str(data_dir),
            "INBOX_API_EMBEDDED_WORKER": "false",
            "INBOX_API_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("INBOX_API_DATABASE_URL", None)
        started = [start(server, env) for server in servers]
        try:
            for _, port in started:
                wait_for(port)
            payloads = {
                query: orjson.dumps(
                    {
                        "query": QUERIES[query],
                        "variables": {
                            key: value
                            for key, value in variables.items()
                            if f"${key}" in QUERIES[query]
                        },
                    }
                )
                for query in queries
            }
            for query in queries:
                check_floor(
                    query,
                    {
                        server.name: ask_once(port, server.path(query), token, payloads[query])
                        for server, (_, port) in zip(servers, started, strict=True)
                    },
                )
            ports = [(server, port) for server, (_, port) in zip(servers, started, strict=True)]
            for query in queries:
                print_table(query, measure(query, ports, token, payloads[query], args), args)
        finally:
            for process, _ in started:
                process.terminate()
            for process, _ in started:
                process.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        print(json.dumps(asyncio.run(load(Round(**json.loads(sys.argv[2]))))))
    else:
        main()
