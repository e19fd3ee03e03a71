"""Real clients receive new mail: the Node graphql-ws client and Python gql, over a real socket."""

from __future__ import annotations

import asyncio

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from app.types import Action
from resolvers.ids import encode_id
from tests.factories import make_owner, make_token
from tests.subscriptions.conftest import (
    LiveServerFactory,
    NodeSubscriber,
    connection_init,
    deliver,
    listening,
    new_account,
)

MESSAGE_EVENTS = """
subscription Mail($accountIds: [ID!], $after: String) {
  messageEvents(accountIds: $accountIds, after: $after) {
    id cursor kind accountId messageId occurredAt
  }
}
"""


async def test_the_node_graphql_ws_client_receives_new_mail(live_server: LiveServerFactory) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    token = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    async with (
        live_server() as server,
        await NodeSubscriber.start(server.url, token, MESSAGE_EVENTS) as client,
    ):
        await client.wait_for("connected")
        await listening(server)
        result = await deliver(server.services, account, "node-1")

        record = await client.wait_for("next", within=5)
        event = record["payload"]["data"]["messageEvents"]
        assert "errors" not in record["payload"]
        assert event["kind"] == "MESSAGE_ADDED"
        assert event["accountId"] == encode_id("Account", account.id)
        message_id = await account.messages.filter(provider_id="node-1").first()
        assert message_id is not None
        assert event["messageId"] == encode_id("Message", message_id.id)
        assert event["cursor"]
        assert result.change_id is not None


async def test_the_python_gql_client_receives_new_mail(live_server: LiveServerFactory) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    token = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    async with live_server() as server:
        transport = WebsocketsTransport(
            url=server.url,
            init_payload=connection_init(token),
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as session:
            events = session.subscribe(GraphQLRequest(MESSAGE_EVENTS))
            first = asyncio.ensure_future(anext(events))
            await listening(server)
            await deliver(server.services, account, "gql-1", "gql-2")
            received = [(await asyncio.wait_for(first, 5))["messageEvents"]]
            received.append((await asyncio.wait_for(anext(events), 5))["messageEvents"])
            await events.aclose()
    assert [event["kind"] for event in received] == ["MESSAGE_ADDED", "MESSAGE_ADDED"]
    ids = [
        encode_id("Message", m.id)
        for m in await account.messages.filter(provider_id__in=["gql-1", "gql-2"]).order_by("id")
    ]
    assert [event["messageId"] for event in received] == ids
    assert received[0]["cursor"] != received[1]["cursor"]
