"""Push tests: the real server (uvicorn) receives the emulators' pushes, a real worker syncs.

``push_server(tls=...)`` serves ``create_app`` on a free port in the test's event loop (as
``tests/subscriptions``' ``live_server`` does), over https with the Microsoft emulator's test
CA when Graph must reach it (its notifications go only to https receivers trusting that CA),
over http for Gmail's Pub/Sub stand-in. Its settings point at both emulators, with push on:
a Gmail topic and verification token, Graph change notifications to its own public URL.

``running_worker(server)`` runs the production job loop (``sync.jobs.run_jobs``) with the
production adapters on the accounts' sealed tokens (``sync.sessions.AdapterFactory``) and the
push registrar as the engine's after-sync hook, polling for due accounts every 0.1 s.
Accounts are connected through the real OAuth flows (``tests.connect``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import uvicorn

from app import clock
from app.models import Account, SyncState
from app.server import create_app
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId
from emulators.graph_testing import ServedEmulator
from emulators.runner import free_port
from resolvers.context import Services
from resolvers.ids import encode_id
from sync.sessions import AdapterFactory
from sync.worker_loop import run_worker
from tests.connect.conftest import (  # noqa: F401 - fixtures
    ServedGoogle,
    connect_app,
    connect_settings,
    events,
    google,
    microsoft,
    ring,
    settings_for_connect,
)
from tests.subscriptions.conftest import LiveServer
from tests.sync.harness import park_other_accounts

SUBJECTS = "query($id: ID!) { account(id: $id) { messages(first: 50) { nodes { subject } } } }"
HOUR = 3600
GMAIL_TOPIC = "projects/inbox-api-tests/topics/gmail-push"
PUSH_TOKEN = "push-verification-token-0123456789"


@dataclass
class PushServer:
    base_url: str
    settings: Settings
    services: Services
    live: LiveServer  # for tests.subscriptions' GraphQL clients
    verify: Any

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, verify=self.verify, trust_env=False)

    async def gql(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        async with self.client() as http:
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"authorization": f"Bearer {token}"},
            )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body


PushServerFactory = Callable[..., AbstractAsyncContextManager[PushServer]]


@pytest.fixture
def push_server(
    db: Settings,
    google: ServedGoogle,  # noqa: F811 (the imported fixture, requested by name)
    microsoft: ServedEmulator,  # noqa: F811
    ring: Any,  # noqa: F811
) -> PushServerFactory:
    @asynccontextmanager
    async def serve(*, tls: bool, **overrides: Any) -> AsyncIterator[PushServer]:
        """A server with push on; ``overrides`` change its settings."""
        port = free_port()
        base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        push_settings: dict[str, Any] = {
            "public_url": base_url,
            "gmail_push_topic": GMAIL_TOPIC,
            "gmail_push_token": PUSH_TOKEN,
            "graph_change_notifications": True,
        }
        settings = connect_settings(db, google, microsoft, **{**push_settings, **overrides})
        app = create_app(settings)
        state = app.app.state  # type: ignore[attr-defined]
        tls_files = microsoft.tls
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                lifespan="off",
                log_config=None,
                log_level="warning",
                timeout_graceful_shutdown=2,
                ssl_certfile=str(tls_files.cert_path) if tls else None,
                ssl_keyfile=str(tls_files.key_path) if tls else None,
            )
        )
        async with state.background():
            task = asyncio.create_task(server.serve())
            try:
                while not server.started:
                    assert not task.done(), "the server did not start"
                    await asyncio.sleep(0.01)
                live = LiveServer(
                    f"ws://127.0.0.1:{port}/graphql",
                    f"{base_url}/graphql",
                    state.services,
                    state.connections,
                )
                verify = tls_files.client_context() if tls else True
                yield PushServer(base_url, settings, state.services, live, verify)
            finally:
                server.should_exit = True
                await task

    return serve


@asynccontextmanager
async def running_worker(server: PushServer, *accounts: Account) -> AsyncIterator[None]:
    """The production worker loop (``sync.worker_loop.run_worker``, as ``inbox-api worker``
    and ``serve`` run it) syncing only ``accounts`` (others are parked) until the block ends."""
    await park_other_accounts(*(account.id for account in accounts))
    adapters = AdapterFactory(server.settings, server.services.events)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            server.settings, adapters.open_adapter, stop_event=stop, events=server.services.events
        )
    )
    try:
        yield
    finally:
        stop.set()
        await worker
        await adapters.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    """Until ``check()`` holds (a generous deadline: pushes and syncs cross real sockets)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def synced(account: Account) -> bool:
    """The account's sync caught up at least once and no run is under way."""
    state = await SyncState.get_or_none(account_id=account.id)
    return (
        state is not None
        and state.last_success_at is not None
        and state.lease_owner is None
        and state.cursor is not None
    )


async def is_due(account: Account) -> bool:
    state = await SyncState.get(account_id=account.id)
    return state.next_run_at is not None and state.next_run_at <= clock.now()


async def make_due_and_wait(account: Account) -> None:
    """Ask for a sync now (as a push would) and wait until it ran."""
    ran_before = (await SyncState.get(account_id=account.id)).last_success_at
    await request_sync_now(AccountId(account.id))

    async def ran() -> bool:
        state = await SyncState.get(account_id=account.id)
        return state.last_success_at != ran_before and state.lease_owner is None

    await eventually(ran)


def mail(subject: str, to: str) -> bytes:
    """A small RFC 822 message from outside."""
    message = EmailMessage()
    message["From"] = "Alice <alice@example.net>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(f"Body of {subject}")
    return bytes(message)


async def subjects(server: PushServer, token: str, account: Account) -> set[str]:
    """The subjects of the account's cached messages, as a GraphQL client reads them."""
    body = await server.gql(token, SUBJECTS, id=encode_id("Account", account.id))
    return {node["subject"] for node in body["data"]["account"]["messages"]["nodes"]}


async def polled_hourly(account: Account) -> Account:
    """The account with an hourly poll: within a test, only a push makes it due soon."""
    await Account.filter(id=account.id).update(sync_interval_seconds=HOUR)
    return await Account.get(id=account.id)
