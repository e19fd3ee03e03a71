"""The push endpoints providers call: Gmail through Cloud Pub/Sub, Microsoft Graph directly.

    POST /push/gmail?verification=...       403 PUSH_FORBIDDEN | 400 MALFORMED_PUSH | 204
    POST /push/graph[/lifecycle]?validationToken=T     200 text/plain T
    POST /push/graph[/lifecycle]            400 MALFORMED_PUSH | 202

Wiring only: authentication, parsing and what a push changes are ``app.services.push_gmail``
and ``push_graph``. Both answer as soon as the body is checked, and the accounts are made due in
a background task after the answer (Pub/Sub redelivers what is not acknowledged within its
deadline, Graph wants an answer within 3 s); a failure there is logged by type and line only.
Nothing from a body is logged or echoed back, but Graph's validation token. The Gmail
verification token sits in the URL (Pub/Sub cannot send a header of ours), so the access log
of uvicorn shows these paths without their query string (``HidePushQueries``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.server.http_errors import error_response, log_unexpected
from app.services.errors import Forbidden, InvalidInput
from app.services.push_gmail import (
    GMAIL_PUSH_PATH,
    VERIFICATION_PARAMETER,
    check_gmail_push_token,
    make_gmail_accounts_due,
    parse_gmail_push,
)
from app.services.push_graph import (
    GRAPH_LIFECYCLE_PATH,
    GRAPH_NOTIFICATION_PATH,
    handle_graph_notifications,
    parse_graph_notifications,
    validation_echo,
)
from resolvers.context import Services

T = TypeVar("T")
PUSH_PREFIX = "/push/"
_NO_STORE = {"Cache-Control": "no-store"}


async def gmail_push(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        check_gmail_push_token(services.settings, request.query_params.get(VERIFICATION_PARAMETER))
        push = parse_gmail_push(await request.body())
    except (Forbidden, InvalidInput) as refused:
        return _refusal(refused)
    return Response(status_code=204, background=_later(make_gmail_accounts_due, push))


async def graph_push(request: Request) -> Response:
    try:
        if "validationToken" in request.query_params:
            echo = validation_echo(request.query_params["validationToken"])
            return PlainTextResponse(echo, headers=_NO_STORE)
        notifications = parse_graph_notifications(await request.body())
    except InvalidInput as refused:
        return _refusal(refused)
    return Response(status_code=202, background=_later(handle_graph_notifications, notifications))


class HidePushQueries(logging.Filter):
    """Drops the query string of push paths from uvicorn's access log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            if query and path.startswith(PUSH_PREFIX):
                record.args = (*args[:2], path, *args[3:])
        return True


def push_routes() -> list[Route]:
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HidePushQueries) for f in access_log.filters):
        access_log.addFilter(HidePushQueries())
    return [
        Route(GMAIL_PUSH_PATH, gmail_push, methods=["POST"]),
        Route(GRAPH_NOTIFICATION_PATH, graph_push, methods=["POST"]),
        Route(GRAPH_LIFECYCLE_PATH, graph_push, methods=["POST"]),
    ]


def _refusal(refused: Forbidden | InvalidInput) -> Response:
    status = 403 if isinstance(refused, Forbidden) else 400
    return error_response(status, refused.code, str(refused), headers=_NO_STORE)


def _later(work: Callable[[T], Awaitable[object]], argument: T) -> BackgroundTask:
    """``work(argument)`` once the answer is sent; an unexpected failure is logged safely."""

    async def run() -> None:
        try:
            await work(argument)
        except Exception as error:
            log_unexpected(error)

    return BackgroundTask(run)
