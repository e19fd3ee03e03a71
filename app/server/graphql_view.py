"""The /graphql endpoint: Strawberry's ASGI view with our authentication and error answers.

HTTP: POST only (no queries in GET URLs); the bearer token is read from the Authorization
header and a bad one gets the single 401 answer. GET renders GraphiQL from our own static
files. WebSocket: graphql-transport-ws only; the token comes in ``connection_init`` (browsers
cannot set headers on a WebSocket) and a bad one closes the socket with 4403.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from app.graphiql import graphiql_html
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


class InboxGraphQL(GraphQL[Context, None]):
    """Strawberry's view, wired to Inbox API's authentication and limits."""

    def __init__(
        self,
        schema: BaseSchema,
        services: Services,
        *,
        allowed_origins: Sequence[str] = (),
        max_subscriptions_per_connection: int = 20,
    ) -> None:
        super().__init__(
            schema,
            allow_queries_via_get=False,
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            allowed_origins=allowed_origins,
        )
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
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
        params = context.connection_params
        raw = None
        if isinstance(params, Mapping):
            raw = bearer_token(params.get("Authorization") or params.get("authorization"))
        principal = await self.services.authenticator.authenticate(raw)
        if principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        context.principal = principal
        return await super().on_ws_connect(context)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Errors raised before execution (parsing) skip the schema extensions: code them here.
        if result.errors:
            result.errors = [classify(error) for error in result.errors]
        return await super().process_result(request, result)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html())
