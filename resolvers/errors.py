"""Every GraphQL error leaves with a code; unexpected ones leave masked.

Expected failures (``ServiceError`` and scope denials) keep their message and code. Parse,
validation and limit errors get GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED or
QUERY_TOO_COMPLEX. Anything else becomes "Internal server error" with code
INTERNAL_SERVER_ERROR and an ``errorId``; the log gets that id, the exception's type and where
it was raised, never its message (which could hold SQL or a secret) nor a stack trace.
"""

from __future__ import annotations

import logging
import re
import secrets
import traceback

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from app.services.errors import Forbidden, InvalidInput, ServiceError

logger = logging.getLogger("inbox_api.errors")

# graphql-core and Strawberry's limiters carry no code; their messages are stable per release
# and tests/app/server/test_bad_input.py pins each of them.
_LIMIT_MARKERS = (
    "exceeds maximum operation depth",
    "aliases found. allowed:",
    "document contains more than",
)


def _code_location(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def error_code(error: GraphQLError) -> str:
    """The code ``error`` leaves with (no side effects: usable by logging extensions)."""
    original = error.original_error
    if isinstance(original, ServiceError):
        return original.code
    if original is None or isinstance(original, GraphQLError):
        code = (error.extensions or {}).get("code")
        if code is not None:
            return str(code)
        message = error.message
        if any(marker in message.lower() for marker in _LIMIT_MARKERS):
            return "QUERY_TOO_COMPLEX"
        if message.startswith("Syntax Error"):
            return "GRAPHQL_PARSE_FAILED"
        return "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


_INVALID_VARIABLE = re.compile(r"^Variable '(\$\w+)' (?:got|has) invalid value")


def _without_echoed_values(message: str) -> str:
    """graphql-core quotes a bad variable's value back; it may hold a password: withhold it."""
    match = _INVALID_VARIABLE.match(message)
    if match is None:
        return message
    return f"Variable '{match.group(1)}' got an invalid value (not shown); check its type."


def classify(error: GraphQLError) -> GraphQLError:
    """Return ``error`` with a code, or a masked copy of it."""
    original = error.original_error
    code = error_code(error)
    extensions = dict(error.extensions or {})
    extensions["code"] = code
    if _INVALID_VARIABLE.match(error.message):
        extensions["code"] = "BAD_USER_INPUT"
        return _with(error, _without_echoed_values(error.message), extensions)
    if isinstance(original, ServiceError):
        if isinstance(original, Forbidden) and original.missing:
            extensions["missingScope"] = original.missing
        if isinstance(original, InvalidInput) and original.field:
            extensions["field"] = original.field
        return _with(error, str(original), extensions)
    if code != "INTERNAL_SERVER_ERROR":
        return _with(error, error.message, extensions)
    error_id = secrets.token_hex(6)
    logger.error(
        "unexpected error %s: %s at %s",
        error_id,
        type(original).__name__,
        _code_location(original) if original is not None else "?",
    )
    return _with(
        error, "Internal server error", {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id}
    )


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class CodedErrors(MaskErrors):
    """Strawberry's masking extension, classifying instead of masking everything."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [classify(error) for error in errors]
