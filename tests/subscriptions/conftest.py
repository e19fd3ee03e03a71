"""Subscription tests run real clients against a real server.

``live_server(**settings)`` serves ``create_app`` with uvicorn in the test's own event loop,
so the server shares the test session's database, event bus and Tortoise connections: mail
written here with ``deliver`` (``sync.apply.apply_batch``, as the sync worker writes it)
reaches subscribers exactly as in production. Clients are the Node ``graphql-ws`` package
(``NodeSubscriber``, a child process printing JSON lines) and Python ``gql`` over websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from app.models import Account, SyncState
from app.server import create_app
from app.server.connection_limits import ConnectionRegistry
from app.services.change_feed import last_change_id
from app.settings import Settings
from emulators.runner import free_port
from resolvers.context import Services
from sync.apply import ApplyResult, apply_batch
from sync.providers.records import Address, ChangeBatch, FlagsRecord, MessageRecord

JS_DIR = Path(__file__).resolve().parents[1] / "support" / "js"
_numbers = itertools.count(1)
EVENT_SECONDS = 10  # an event reaches a listening client within a poll interval (1 s)
LISTEN_SECONDS = 20


@dataclass
class LiveServer:
    url: str  # ws://.../graphql
    http_url: str  # http://.../graphql
    services: Services
    connections: ConnectionRegistry


LiveServerFactory = Callable[..., AbstractAsyncContextManager[LiveServer]]


@pytest.fixture
def live_server(db: Settings) -> LiveServerFactory:
    """``async with live_server(**setting_overrides) as server:`` a server on a free port."""

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[LiveServer]:
        settings = db.model_copy(update=overrides)
        app = create_app(settings)
        state = app.app.state
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                lifespan="off",
                log_config=None,
                log_level="warning",
                timeout_graceful_shutdown=2,
                ws_per_message_deflate=settings.websocket_compression,  # as `inbox-api serve`
            )
        )
        async with state.background():
            task = asyncio.create_task(server.serve())
            try:
                while not server.started:
                    assert not task.done(), "the server did not start"
                    await asyncio.sleep(0.01)
                yield LiveServer(
                    f"ws://127.0.0.1:{port}/graphql",
                    f"http://127.0.0.1:{port}/graphql",
                    state.services,
                    state.connections,
                )
            finally:
                server.should_exit = True
                await task

    return serve


class NodeSubscriber:
    """``tests/support/js/subscribe.mjs`` in a child process: the graphql-ws client."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        url: str,
        token: str,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        origin: str | None = None,
        subscriptions: int = 1,
    ) -> NodeSubscriber:
        if not (JS_DIR / "node_modules" / "graphql-ws").is_dir():
            pytest.fail("the Node test clients are not installed: run scripts/install-node-deps")
        arguments = ["--url", url, "--token", token, "--query", query]
        arguments += ["--variables", json.dumps(variables or {})]
        arguments += ["--subscriptions", str(subscriptions)]
        if origin is not None:
            arguments += ["--origin", origin]
        process = await asyncio.create_subprocess_exec(
            "node",
            str(JS_DIR / "subscribe.mjs"),
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def next_record(self, within: float = 10.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"the Node client ended: {stderr.decode()[-2000:]}")
        record: dict[str, Any] = json.loads(line)
        self.records.append(record)
        return record

    async def wait_for(self, event: str, within: float = 10.0) -> dict[str, Any]:
        """The next record of this kind (others are kept in ``records``)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            record = await self.next_record(max(remaining, 0.01))
            if record["event"] == event:
                return record

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def __aenter__(self) -> NodeSubscriber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def connection_init(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def listening(server: LiveServer, count: int = 1) -> None:
    """Until ``count`` subscriptions listen on the server (so "from now on" includes what the
    test writes next)."""
    for _ in range(500):
        if server.services.changes.listener_count >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the subscription never started listening")


@asynccontextmanager
async def gql_subscription(
    server: LiveServer, token: str, query: str, **variables: Any
) -> AsyncIterator[Callable[[], Awaitable[dict[str, Any]]]]:
    """A Python ``gql`` client subscribed and listening; yields ``next_event()``
    (``EVENT_SECONDS`` limit), which returns the subscription field's data and raises on errors."""
    transport = WebsocketsTransport(
        url=server.url,
        init_payload=connection_init(token),
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        results = session.subscribe(GraphQLRequest(query, variable_values=variables))
        pending = asyncio.ensure_future(anext(results))
        already = server.services.changes.listener_count

        tail = server.services.changes

        async def next_event() -> dict[str, Any]:
            nonlocal pending
            done = pending if pending is not None else asyncio.ensure_future(anext(results))
            pending = None
            try:
                data: dict[str, Any] = await asyncio.wait_for(done, EVENT_SECONDS)
            except TimeoutError:
                last = await last_change_id()
                raise AssertionError(
                    f"no event within {EVENT_SECONDS} s: the change log ends at {last}, the "
                    f"tail is at {tail.horizon} ({'running' if tail.running else 'stopped'}) "
                    f"with {tail.listener_count} listener(s)"
                ) from None
            return next(iter(data.values()))

        try:
            for _ in range(LISTEN_SECONDS * 100):  # listening, or already answered (an error)
                if pending.done() or tail.listener_count > already:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"the subscription was not listening after {LISTEN_SECONDS} s")
            yield next_event
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            await results.aclose()


async def new_account(owner_id: int) -> Account:
    n = next(_numbers)
    account = await Account.create(
        owner_id=owner_id, provider="gmail", address=f"live{n}@example.com"
    )
    await SyncState.create(account_id=account.id)
    return account


def message(provider_id: str, *, minute: int = 0, unread: bool = True) -> MessageRecord:
    return MessageRecord(
        provider_id=provider_id,
        thread_provider_id=f"thread-{provider_id}",
        subject=f"Subject {provider_id}",
        date=datetime(2024, 5, 1, 9, minute % 60, tzinfo=UTC),
        from_addresses=(Address("Alice", "alice@example.com"),),
        to_addresses=(Address("Bob", "bob@example.org"),),
        snippet=f"snippet {provider_id}",
        unread=unread,
        label_ids=("INBOX", "UNREAD") if unread else ("INBOX",),
    )


async def deliver(services: Services, account: Account, *provider_ids: str) -> ApplyResult:
    """New mail, applied to the cache the way the sync worker applies it."""
    batch = ChangeBatch(upserts=[message(pid) for pid in provider_ids])
    return await apply_batch(account.id, batch, events=services.events)


async def mark_read(services: Services, account: Account, provider_id: str) -> ApplyResult:
    flags = FlagsRecord(provider_id, ("INBOX",), unread=False, starred=False)
    return await apply_batch(account.id, ChangeBatch(flag_updates=[flags]), events=services.events)


async def remove(services: Services, account: Account, provider_id: str) -> ApplyResult:
    batch = ChangeBatch(deletions=[provider_id])
    return await apply_batch(account.id, batch, events=services.events)
