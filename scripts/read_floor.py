"""The floor of the read benchmark (``scripts/bench_read.py``): hand-written endpoints, no GraphQL.

One Starlette route per benchmark query, each doing what the resolvers do for it and nothing
else: the same token authentication (``TokenAuthenticator``), the same SQL statements (built
by the same ``resolvers.lists`` helpers, in the same order), and the same JSON, encoded with
orjson. ``bench_read.py`` checks at start-up that each floor answers byte for byte what the
GraphQL server answers, so a floor cannot get cheaper by doing less.

    POST /floor/latest     {"variables": {"account": ID}}                  latest 50 messages
    POST /floor/nested     {"variables": {"account": ID}}                  20 threads x 5 messages
    POST /floor/fragments  {"variables": {"account": ID, "folder": ID}}    2 aliased lists of 25
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.authenticator import TokenAuthenticator
from app.auth.principal import Principal
from app.db import close_database, open_database
from app.settings import Settings
from resolvers.filters import MessageCriteria, ThreadCriteria
from resolvers.ids import decode_typed, encode_id
from resolvers.lists import Branch, fetch_merged, fetch_windows
from resolvers.pagination import PageRequest
from resolvers.rows import FOLDERS_OF_ACCOUNTS, MESSAGES, THREADS
from resolvers.sql import Row, Statement, as_datetime, as_json

Handler = Callable[[Principal, dict[str, Any]], Awaitable[dict[str, Any]]]


def _addresses(value: Any) -> list[dict[str, str]]:
    return [
        {"name": item.get("name") or "", "address": item.get("email") or ""}
        for item in as_json(value) or ()
    ]


def message_fields(row: Row, folder_names: dict[str, str]) -> dict[str, Any]:
    """id, subject, from, to, snippet, date, labels { name }, unread of a message row."""
    return {
        "id": encode_id("Message", row[2]),
        "subject": row[6],
        "from": _addresses(row[7]),
        "to": _addresses(row[8]),
        "snippet": row[12],
        "date": as_datetime(row[1]).isoformat(),
        "labels": [
            {"name": folder_names[pid]} for pid in as_json(row[16]) or () if pid in folder_names
        ],
        "unread": bool(row[13]),
    }


async def readable_account(principal: Principal, global_id: str) -> list[int]:
    """``resolvers.tenancy.readable_accounts`` for one wanted account: its statement."""
    account = decode_typed(global_id, "Account") or 0
    if not principal.may_touch(account):
        return []
    sql = Statement("sqlite")
    return [
        int(row[0])
        for row in await sql.rows(
            f"SELECT id FROM accounts WHERE owner_id = {sql(principal.owner_id)} "  # noqa: S608 (constant text; values are parameters)
            f"AND id = {sql(account)} ORDER BY id"
        )
    ]


async def folder_names(account_ids: Sequence[int]) -> dict[str, str]:
    """Folder names by provider id, of these accounts: the labels' statement."""
    if not account_ids:
        return {}
    sql = Statement("sqlite")
    rows = await sql.rows(FOLDERS_OF_ACCOUNTS.format(ids=sql.each(sorted(set(account_ids)))))
    return {row[3]: row[4] for row in rows}


def _branches(column: str, numbers: Sequence[int]) -> list[Branch]:
    def equals(number: int) -> Branch:
        return Branch(number, lambda s: f"{column} = {s(number)}")

    return [equals(number) for number in numbers]


async def latest(principal: Principal, variables: dict[str, Any]) -> dict[str, Any]:
    accounts = await readable_account(principal, variables["account"])
    rows = await fetch_merged(
        MESSAGES, _branches("m.account_id", accounts), MessageCriteria().where, PageRequest(50)
    )
    names = await folder_names([row[3] for row in rows])
    return {"messages": {"nodes": [message_fields(row, names) for row in rows[:50]]}}


async def nested(principal: Principal, variables: dict[str, Any]) -> dict[str, Any]:
    accounts = await readable_account(principal, variables["account"])
    threads = await fetch_merged(
        THREADS, _branches("t.account_id", accounts), ThreadCriteria().where, PageRequest(20)
    )
    threads = threads[:20]
    windows = await fetch_windows(
        MESSAGES,
        _branches("m.thread_id", [row[2] for row in threads]),
        MessageCriteria().where,
        PageRequest(5),
    )
    names = await folder_names([row[3] for rows in windows.values() for row in rows])
    return {
        "threads": {
            "nodes": [
                {
                    "id": encode_id("Thread", thread[2]),
                    "subject": thread[4],
                    "lastMessageAt": as_datetime(thread[1]).isoformat(),
                    "messages": {
                        "nodes": [message_fields(row, names) for row in windows[thread[2]][:5]]
                    },
                }
                for thread in threads
            ]
        }
    }


async def fragments(principal: Principal, variables: dict[str, Any]) -> dict[str, Any]:
    accounts = await readable_account(principal, variables["account"])
    branches = _branches("m.account_id", accounts)
    folder = decode_typed(variables["folder"], "Folder") or 0
    unread = await fetch_merged(
        MESSAGES, branches, MessageCriteria(unread=True).where, PageRequest(25)
    )
    filed = await fetch_merged(
        MESSAGES, branches, MessageCriteria(folder_id=folder).where, PageRequest(25)
    )
    names = await folder_names([row[3] for row in unread + filed])
    return {
        "unread": {"nodes": [message_fields(row, names) for row in unread[:25]]},
        "filed": {
            "nodes": [
                {**message_fields(row, names), "starred": bool(row[14])} for row in filed[:25]
            ]
        },
    }


FLOORS: dict[str, Handler] = {"latest": latest, "nested": nested, "fragments": fragments}


def floor_app(data_dir: Path) -> Starlette:
    """The floor server over the benchmark's SQLite database."""
    settings = Settings(data_dir=data_dir, embedded_worker=False)
    authenticator = TokenAuthenticator()

    def route(name: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            principal = await authenticator.authenticate(header.partition(" ")[2].strip())
            if principal is None:
                return Response(status_code=401)
            body = orjson.loads(await request.body())
            data = await handler(principal, body["variables"])
            return Response(orjson.dumps({"data": data}), media_type="application/json")

        return Route(f"/floor/{name}", endpoint, methods=["POST"])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await open_database(settings, apply_migrations=False)
        yield
        await close_database()

    return Starlette(
        routes=[route(name, handler) for name, handler in FLOORS.items()], lifespan=lifespan
    )


def floor_from_environment() -> Starlette:
    return floor_app(Path(os.environ["INBOX_API_DATA_DIR"]))
