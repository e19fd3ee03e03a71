"""WebSocket rules with real clients: Origin, caps, keep-alive, revocation and termination."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app import clock
from app.events import OwnerTerminated
from app.types import Action
from resolvers.ids import encode_id
from tests.factories import make_owner, make_token
from tests.subscriptions.conftest import (
    LiveServerFactory,
    NodeSubscriber,
    listening,
    new_account,
)
from tests.subscriptions.test_live_clients import MESSAGE_EVENTS

ALLOWED = "https://app.example.com"


async def raw_connection(url: str, token: str) -> ClientConnection:
    """A bare graphql-transport-ws connection, to read close codes exactly."""
    socket = await websockets.connect(
        url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    return socket


async def acknowledged(socket: ClientConnection) -> bool:
    try:
        reply = json.loads(await asyncio.wait_for(socket.recv(), 5))
    except websockets.ConnectionClosed:
        return False
    return bool(reply["type"] == "connection_ack")


async def test_a_page_on_another_origin_cannot_open_a_socket(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    async with live_server(allowed_origins=[ALLOWED]) as server:
        async with await NodeSubscriber.start(
            server.url, made.token, MESSAGE_EVENTS, origin="https://evil.example"
        ) as refused:
            closed = await refused.wait_for("closed")
        errors = [r["message"] for r in refused.records if r["event"] == "socket-error"]
        assert any("403" in message for message in errors), refused.records
        assert not any(r["event"] == "connected" for r in refused.records)
        assert closed["code"] == 1006  # the handshake never completed

        async with await NodeSubscriber.start(
            server.url, made.token, MESSAGE_EVENTS, origin=ALLOWED
        ) as allowed:
            await allowed.wait_for("connected")


async def test_a_connection_runs_a_capped_number_of_subscriptions(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    async with (
        live_server(max_subscriptions_per_connection=2) as server,
        await NodeSubscriber.start(
            server.url, made.token, MESSAGE_EVENTS, subscriptions=3
        ) as client,
    ):
        error = await client.wait_for("error")
        assert error["sub"] == 2
        assert error["errors"][0]["message"] == "Subscription limit reached"
        await listening(server, 2)
        assert server.services.changes.listener_count == 2


async def test_a_token_holds_a_capped_number_of_connections(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    other_token = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    async with live_server(max_connections_per_token=2) as server:
        first = await raw_connection(server.url, made.token)
        second = await raw_connection(server.url, made.token)
        assert await acknowledged(first)
        assert await acknowledged(second)

        third = await raw_connection(server.url, made.token)
        assert not await acknowledged(third)
        assert third.close_code == 4429
        assert third.close_reason == "Too many connections for this token"

        another = await raw_connection(server.url, other_token)  # the cap is per token
        assert await acknowledged(another)

        await first.close()
        for _ in range(100):
            if server.connections.connections_of_token(await _token_id(made.token)) < 2:
                break
            await asyncio.sleep(0.01)
        again = await raw_connection(server.url, made.token)  # a released seat is free again
        assert await acknowledged(again)
        for socket in (second, another, again):
            await socket.close()


async def _token_id(token: str) -> int:
    from app.auth.authenticator import TokenAuthenticator

    principal = await TokenAuthenticator().authenticate(token)
    assert principal is not None
    return principal.token_id


async def revoke_over_http(server: Any, owner_token: str, token: str) -> None:
    token_id = encode_id("Token", await _token_id(token))
    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.http_url,
            json={
                "query": "mutation($id: ID!) { revokeToken(id: $id) { __typename } }",
                "variables": {"id": token_id},
            },
            headers={"authorization": f"Bearer {owner_token}"},
        )
    assert response.json() == {"data": {"revokeToken": {"__typename": "TokenRevokedPayload"}}}


async def test_revoking_a_token_closes_its_sockets_within_seconds(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    await new_account(made.owner.id)
    frontend = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    bystander = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    async with (
        live_server() as server,  # pings every 15 s: the revocation event alone must close it
        await NodeSubscriber.start(server.url, frontend, MESSAGE_EVENTS) as client,
        await NodeSubscriber.start(server.url, bystander, MESSAGE_EVENTS) as unaffected,
    ):
        await client.wait_for("connected")
        await unaffected.wait_for("connected")
        await listening(server, 2)

        started = time.monotonic()
        await revoke_over_http(server, made.token, frontend)
        closed = await client.wait_for("closed", within=3)
        assert time.monotonic() - started < 3
        assert (closed["code"], closed["reason"]) == (4403, "Token revoked")

        await asyncio.sleep(0.2)
        assert server.services.changes.listener_count == 1
        assert not any(r["event"] == "closed" for r in unaffected.records)


async def test_terminating_an_owner_closes_every_socket_of_its_tokens(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    second = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    async with live_server() as server:
        sockets = [await raw_connection(server.url, t) for t in (made.token, second)]
        assert all([await acknowledged(s) for s in sockets])
        await server.services.events.publish(OwnerTerminated(owner_id=made.owner.id))
        for socket in sockets:
            await asyncio.wait_for(socket.wait_closed(), 3)
            assert (socket.close_code, socket.close_reason) == (4403, "Owner terminated")


@pytest.mark.usefixtures("_reset_clock")
async def test_the_server_pings_and_closes_a_socket_whose_token_expired(
    live_server: LiveServerFactory,
) -> None:
    made = await make_owner()
    expiring = await make_token(
        made.owner,
        actions={Action.MESSAGES_METADATA},
        expires_at=clock.now() + timedelta(hours=1),
    )
    async with (
        live_server(websocket_ping_seconds=0.2) as server,
        await NodeSubscriber.start(server.url, expiring, MESSAGE_EVENTS) as client,
    ):
        await client.wait_for("connected")
        await client.wait_for("ping", within=3)
        clock.travel(timedelta(hours=2))
        closed = await client.wait_for("closed", within=3)
        assert (closed["code"], closed["reason"]) == (4403, "Token no longer valid")
