"""/metrics: who may read it, operations counted, sync figures from the database, and open
subscriptions seen through a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from pydantic import SecretStr

from app import clock
from app.models import SyncState
from app.server import create_app
from app.settings import Settings
from app.types import AccountStatus, Provider, SyncPhase
from tests.factories import make_account, make_owner
from tests.subscriptions.conftest import (
    LiveServer,
    LiveServerFactory,
    live_server,  # noqa: F401 (a fixture, used by name)
)

METRICS_TOKEN = "metrics-secret-for-tests"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, or None when it is absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return None


def client_for(app: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_operations_are_counted_and_timed_by_type_name_and_outcome(app: Any) -> None:
    made = await make_owner()
    headers = {"authorization": f"Bearer {made.token}"}
    async with client_for(app) as client:
        for query in (
            "query MetricsProbe { currentToken { scopes } }",
            "query MetricsProbe { currentToken { scopes } }",
            "query MetricsProbe { nope }",
            "{ currentToken { scopes } }",
        ):
            await client.post("/graphql", json={"query": query}, headers=headers)
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    total = "inbox_api_graphql_operations_total"
    assert sample(text, total, type="query", operation="MetricsProbe", status="ok") == 2
    assert sample(text, total, type="query", operation="MetricsProbe", status="error") == 1
    assert (sample(text, total, type="query", operation="anonymous", status="ok") or 0) >= 1
    count = "inbox_api_graphql_operation_seconds_count"
    assert sample(text, count, type="query", operation="MetricsProbe") == 3
    assert made.token not in text


async def test_only_loopback_without_a_token_and_never_through_a_proxy(app: Any) -> None:
    async with client_for(app, host="203.0.113.9") as remote:
        assert (await remote.get("/metrics")).status_code == 404
    async with client_for(app) as local:
        forwarded = await local.get("/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert forwarded.status_code == 404
        assert (await local.get("/metrics")).status_code == 200


async def test_with_a_token_configured_the_token_is_required_from_everywhere(
    db: Settings,
) -> None:
    app = create_app(db.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)}))
    async with client_for(app) as local:
        missing = await local.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await local.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    async with client_for(app, host="203.0.113.9") as remote:
        right = await remote.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200
        assert "inbox_api_open_subscriptions" in right.text


async def test_sync_lag_phases_and_failures_come_from_the_sync_states(app: Any) -> None:
    made = await make_owner()
    stale = await make_account(made.owner, provider=Provider.GRAPH)
    failing = await make_account(made.owner)
    stopped = await make_account(made.owner, status=AccountStatus.NEEDS_REAUTH)
    now = clock.now()
    await SyncState.create(
        account_id=stale.id, phase=SyncPhase.INCREMENTAL, last_success_at=now - timedelta(days=3)
    )
    await SyncState.create(
        account_id=failing.id,
        phase=SyncPhase.BACKOFF,
        last_error_code="METRICS_TEST_FAILURE",
        consecutive_failures=4,
    )
    await SyncState.create(
        account_id=stopped.id, phase=SyncPhase.STOPPED, last_error_code="METRICS_TEST_REVOKED"
    )
    async with client_for(app) as client:
        text = (await client.get("/metrics")).text
    lag = sample(text, "inbox_api_sync_lag_seconds", provider="graph")
    assert lag is not None
    assert lag >= 3 * 86400
    code = "METRICS_TEST_FAILURE"
    assert sample(text, "inbox_api_sync_failing_accounts", code=code) == 1
    assert sample(text, "inbox_api_sync_consecutive_failures", code=code) == 4
    # Accounts that may not sync (needs re-authorisation) are no failing sync.
    assert sample(text, "inbox_api_sync_failing_accounts", code="METRICS_TEST_REVOKED") is None
    backing_off = sample(text, "inbox_api_sync_accounts", provider="gmail", phase="backoff")
    assert backing_off is not None
    assert backing_off >= 1


async def test_open_subscriptions_rise_and_fall_with_a_real_client(
    live_server: LiveServerFactory,  # noqa: F811 (the fixture imported above)
) -> None:
    made = await make_owner()
    async with live_server() as server:
        await count_open_subscriptions(server, made.token)


async def count_open_subscriptions(server: LiveServer, token: str) -> None:

    async def open_subscriptions() -> float | None:
        async with httpx.AsyncClient(trust_env=False) as client:
            return sample(
                (await client.get(server.http_url.replace("/graphql", "/metrics"))).text,
                "inbox_api_open_subscriptions",
            )

    assert await open_subscriptions() == 0
    transport = WebsocketsTransport(
        url=server.url,
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        events = session.subscribe(GraphQLRequest("subscription { messageEvents { kind } }"))
        waiting = asyncio.ensure_future(anext(events))
        await settles_at(open_subscriptions, 1)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await events.aclose()
    await settles_at(open_subscriptions, 0)


async def settles_at(read: Callable[[], Awaitable[float | None]], expected: float) -> None:
    for _ in range(100):
        if await read() == expected:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the value stayed {await read()}, not {expected}")
