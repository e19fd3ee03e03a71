"""HTTP-level errors as JSON with a code, shaped like GraphQL errors so clients parse one shape."""

from __future__ import annotations

import logging
import traceback

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

logger = logging.getLogger("inbox_api.server")


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers=headers,
    )


def unauthenticated() -> JSONResponse:
    """The one answer for missing, malformed, unknown, expired and revoked tokens."""
    return error_response(
        401,
        "UNAUTHENTICATED",
        "A valid API token is required (Authorization: Bearer <token>).",
        headers={"WWW-Authenticate": 'Bearer realm="inbox-api"'},
    )


STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def log_unexpected(error: BaseException) -> None:
    """One safe log line: the exception's type and where it was raised, nothing it carries."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    logger.error("unexpected error: %s at %s", type(error).__name__, where)


def _internal_error_response() -> JSONResponse:
    return error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error")


async def internal_error(scope: Scope, receive: Receive, send: Send) -> None:
    await _internal_error_response()(scope, receive, send)


async def internal_error_handler(request: Request, error: Exception) -> JSONResponse:
    """Starlette's handler for anything unexpected: a coded 500 and no details."""
    return _internal_error_response()
