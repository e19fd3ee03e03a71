"""Read-path benchmark: GraphQL "latest 50 messages" against a hand-written floor endpoint.

    .venv/bin/python scripts/bench_read.py [--messages 10000] [--seconds 10] [--connections 16]
                                           [--compare-fast-path]

Seeds N messages in a temporary SQLite database, then starts, each in its own process:
the real server (``uvicorn app.server:create_app_from_environment``, one worker, scope checks
and usage logging on) and a floor server (plain Starlette: the same token authentication, the
same SQL statements, the same JSON encoded with orjson). A load generator in a third process
(a minimal keep-alive HTTP/1.1 client, so it costs the servers as little CPU as possible)
keeps ``--connections`` requests in flight for ``--seconds`` against each, after a warm-up,
and the script prints requests/s, p50 and p99 of both as a markdown table.

The query: the latest 50 messages of one account with id, subject, from, to, snippet, date,
labels and unread.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUERY = """query Latest($account: ID!) {
  messages(first: 50, filter: {accountId: $account}) {
    nodes { id subject from { name address } to { name address } snippet date
            labels { name } unread }
  }
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- seeding ---------------------------------------------------------------------------------


async def seed(data_dir: Path, count: int) -> tuple[str, str]:
    """A token and an account global id, with ``count`` cached messages in four folders."""
    from tortoise import Tortoise

    from app.db import open_database
    from app.models import Account, Folder, Message, MessageLabel
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
    for first in range(0, count, 1000):
        batch = [
            Message(
                account_id=account.id,
                provider_id=f"m{n}",
                subject=f"Subject number {n} about the quarterly plan",
                from_addresses=[{"name": f"Sender {n % 97}", "email": f"s{n % 97}@example.com"}],
                to_addresses=[{"name": "Me", "email": "me@example.com"}],
                date=start + timedelta(minutes=n),
                snippet=f"Snippet of message {n}: a line or two of preview text for the list",
                unread=n % 3 == 0,
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
    return issued.raw, encode_id("Account", account.id)


# --- the floor server --------------------------------------------------------------------------


def floor_app(data_dir: Path) -> Any:
    """Starlette, one route: token -> the same SQL -> the same JSON, with orjson."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from app.auth.authenticator import TokenAuthenticator
    from app.db import close_database, open_database
    from app.settings import Settings
    from resolvers.filters import MessageCriteria
    from resolvers.ids import decode_typed, encode_id
    from resolvers.lists import Branch, union_sql
    from resolvers.pagination import PageRequest
    from resolvers.rows import FOLDERS_OF_ACCOUNTS, MESSAGES
    from resolvers.sql import Statement, as_json, connection

    settings = Settings(data_dir=data_dir, embedded_worker=False)
    authenticator = TokenAuthenticator()

    def addresses(value: Any) -> list[dict[str, str]]:
        return [
            {"name": item.get("name") or "", "address": item.get("email") or ""}
            for item in as_json(value) or ()
        ]

    async def latest(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        principal = await authenticator.authenticate(header.partition(" ")[2].strip())
        if principal is None:
            return Response(status_code=401)
        body = orjson.loads(await request.body())
        account = decode_typed(body["variables"]["account"], "Account") or 0
        if not principal.may_touch(account):
            return Response(orjson.dumps({"data": {"messages": {"nodes": []}}}))
        check = Statement("sqlite")
        accounts = await check.rows(
            f"SELECT id FROM accounts WHERE owner_id = {check(principal.owner_id)} "  # noqa: S608 (constant text)
            f"AND id = {check(account)} ORDER BY id"
        )
        nodes: list[dict[str, Any]] = []
        if accounts:
            sql = Statement("sqlite")
            branch = Branch(account, lambda s: f"m.account_id = {s(account)}")
            text = union_sql(sql, MESSAGES, [branch], MessageCriteria().where, PageRequest(50))
            rows = (await sql.rows(text))[:50]
            labels = Statement("sqlite")
            folders = await labels.rows(FOLDERS_OF_ACCOUNTS.format(ids=labels(account)))
            names = {row[3]: row[4] for row in folders}
            for row in rows:
                nodes.append(
                    {
                        "id": encode_id("Message", row[2]),
                        "subject": row[6],
                        "from": addresses(row[7]),
                        "to": addresses(row[8]),
                        "snippet": row[12],
                        "date": datetime.fromisoformat(row[1]).isoformat(),
                        "labels": [
                            {"name": names[pid]} for pid in as_json(row[16]) if pid in names
                        ],
                        "unread": bool(row[13]),
                    }
                )
        return Response(
            orjson.dumps({"data": {"messages": {"nodes": nodes}}}),
            media_type="application/json",
        )

    async def lifespan(app: Any) -> Any:
        await open_database(settings, apply_migrations=False)
        assert connection() is not None
        yield
        await close_database()

    from contextlib import asynccontextmanager

    return Starlette(
        routes=[Route("/graphql", latest, methods=["POST"])], lifespan=asynccontextmanager(lifespan)
    )


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


async def load(
    port: int, token: str, account: str, seconds: float, connections: int
) -> dict[str, float]:
    payload = orjson.dumps({"query": QUERY, "variables": {"account": account}})
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    warmup = 2.0
    now = time.perf_counter()
    latencies: list[float] = []
    failures = await asyncio.gather(
        *(
            _one_connection(port, request, now + warmup + seconds, now + warmup, latencies)
            for _ in range(connections)
        )
    )
    latencies.sort()
    return {
        "requests_per_second": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "failures": float(sum(failures)),
    }


# --- orchestration -----------------------------------------------------------------------------


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def run_load(port: int, token: str, account: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "load",
        str(port),
        token,
        account,
        str(args.seconds),
        str(args.connections),
    ]
    out = subprocess.run(  # noqa: S603 (this script, started again as the load generator)
        command, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--compare-fast-path",
        action="store_true",
        help="also measure the server with INBOX_API_FAST_PATH=false (graphql-core only)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        data_dir = Path(tmp)
        token, account = asyncio.run(seed(data_dir, args.messages))
        env = {
            **os.environ,
            "INBOX_API_DATA_DIR": str(data_dir),
            "INBOX_API_EMBEDDED_WORKER": "false",
            "INBOX_API_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("INBOX_API_DATABASE_URL", None)
        results = {}
        servers = [
            ("GraphQL (Strawberry)", "app.server:create_app_from_environment", "true"),
            ("floor (Starlette + orjson)", "scripts.bench_read:floor_from_environment", "true"),
        ]
        if args.compare_fast_path:
            servers.insert(
                1, ("GraphQL, fast_path off", "app.server:create_app_from_environment", "false")
            )
        for name, target, fast_path in servers:
            port = free_port()
            server = subprocess.Popen(  # noqa: S603 (uvicorn serving this project)
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    target,
                    "--factory",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env={**env, "INBOX_API_FAST_PATH": fast_path},
                cwd=ROOT,
            )
            try:
                wait_for(port)
                results[name] = run_load(port, token, account, args)
            finally:
                server.terminate()
                server.wait(timeout=30)
    floor = results["floor (Starlette + orjson)"]
    print(
        f"\n{args.messages} messages, latest 50, {args.connections} connections, "
        f"{args.seconds:g} s\n"
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


def floor_from_environment() -> Any:
    return floor_app(Path(os.environ["INBOX_API_DATA_DIR"]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        port, token, account, seconds, connections = sys.argv[2:7]
        print(
            json.dumps(
                asyncio.run(load(int(port), token, account, float(seconds), int(connections)))
            )
        )
    else:
        main()
