"""The /graphql endpoint: Strawberry's ASGI view with our authentication and error answers.

HTTP: POST only (no queries in GET URLs); the bearer token is read from the Authorization
header and a bad one gets the single 401 answer. A query the schema accepted before is
answered from its compiled plan without Strawberry's pipeline (``app.server.direct_reads``).
GET renders GraphiQL from our own static files.

WebSocket: graphql-transport-ws only, from the same origin or an allowed one; the token comes
in ``connection_init`` (browsers cannot set headers on a WebSocket) and a bad one closes the
socket with 4403. A token holds a capped number of connections (4429 past it), each a capped
number of subscriptions. The connection registry (``app.server.connection_limits``) pings
every connection once per ``websocket_ping_seconds``, checking its token again, and closes
the sockets of revoked tokens and terminated owners at once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from app.graphiql import graphiql_html
from app.server.connection_limits import (
    CLOSE_FORBIDDEN,
    CLOSE_TOO_MANY_CONNECTIONS,
    ConnectionRegistry,
    TooManyConnections,
)
from app.server.direct_reads import DirectReads
from app.server.http_errors import STATUS_CODES, error_response, unauthenticated
from resolvers.context import Context, Services
from resolvers.errors import classify


def bearer_token(value: object) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, or None."""
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _connection_token(context: Context) -> str | None:
    params = context.connection_params
    if not isinstance(params, Mapping):
        return None
    return bearer_token(params.get("Authorization") or params.get("authorization"))


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with a seat in the connection registry, which pings it."""

    @property
    def inbox(self) -> InboxGraphQL:
        return cast(InboxGraphQL, self.view)

    async def handle(self) -> None:
        key = id(self.context)
        self.inbox.connections.open(key, self)
        try:
            await super().handle()
        finally:
            self.inbox.connections.release(key)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except TooManyConnections:
            await self.websocket.close(
                CLOSE_TOO_MANY_CONNECTIONS, "Too many connections for this token"
            )

    async def close_connection(self, code: int, reason: str) -> None:
        """Stop every operation, then close the socket (a no-op if it is already closed)."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.websocket.close(code, reason)

    async def keep_alive(self) -> None:
        """Ping, after checking the token again: this catches expiry, and a revocation whose
        event this process missed."""
        if not await self.inbox.still_authorised(self.context):
            await self.close_connection(CLOSE_FORBIDDEN, "Token no longer valid")
            return
        with contextlib.suppress(WebSocketDisconnected):
            await self.send_message({"type": "ping"})


class InboxGraphQL(GraphQL[Context, None]):
    """Strawberry's view, wired to Inbox API's authentication and limits."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        services: Services,
        *,
        connections: ConnectionRegistry,
        allowed_origins: Sequence[str] = (),
        max_subscriptions_per_connection: int = 20,
        direct: DirectReads | None = None,
    ) -> None:
        super().__init__(
            schema,
            allow_queries_via_get=False,
            # Strawberry's keep-alive serves only the legacy protocol: the registry pings.
            keep_alive=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            allowed_origins=allowed_origins,
        )
        self.services = services
        self.connections = connections
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        if self.direct is not None and request.method == "POST":
            direct = await self.direct.answer(request, self)
            if direct is not None:
                await direct(scope, receive, send)
                return
        try:
            response = await self.run(request)
        except HTTPException as error:
            if error.status_code == 401:
                response = unauthenticated()
            else:
                code = STATUS_CODES.get(error.status_code, "BAD_REQUEST")
                response = error_response(error.status_code, code, error.reason)
        await response(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(services=self.services, principal=None, request=request)
        if isinstance(request, WebSocket) or request.method == "GET":
            return context
        raw = bearer_token(request.headers.get("authorization"))
        context.principal = await self.services.authenticator.authenticate(raw)
        if context.principal is None:
            raise HTTPException(401, "unauthenticated")
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        principal = await self.services.authenticator.authenticate(_connection_token(context))
        if principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        self.connections.admit(id(context), principal)
        context.principal = principal
        return await super().on_ws_connect(context)

    async def still_authorised(self, context: Context) -> bool:
        """Whether the connection's token still authenticates as the principal it began with."""
        principal = await self.services.authenticator.authenticate(_connection_token(context))
        return principal is not None and principal == context.principal

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Errors raised before execution (parsing) skip the schema extensions: code them here.
        if result.errors:
            result.errors = [classify(error) for error in result.errors]
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> str:
        """The answer as compact JSON, written by orjson (Strawberry's ``json.dumps`` was ~9 %
        of a 50-message read); text either way, so WebSocket frames stay text frames. What
        orjson refuses (a lone surrogate, an integer past 64 bits) goes to ``json.dumps``."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:  # orjson.JSONEncodeError
            return json.dumps(data, separators=(",", ":"))

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html())
