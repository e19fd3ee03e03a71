"""ASGI middleware: request body limit, token-in-query refusal and security headers.

Pure ASGI (no BaseHTTPMiddleware) so streaming responses and WebSockets pass untouched.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.server.http_errors import error_response, internal_error, log_unexpected

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_TOKEN_PARAMETERS = frozenset({"access_token", "token", "api_key", "apikey", "authorization"})


class _BodyTooLarge(Exception):
    pass


class RequestGuard:
    """Refuses oversize bodies (413), tokens in query strings (400), adds security headers."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        query = scope.get("query_string", b"").decode("latin-1")
        if any(key.lower() in _TOKEN_PARAMETERS for key, _ in parse_qsl(query)):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = error_response(
                400,
                "TOKEN_IN_QUERY_STRING",
                "Tokens are accepted only in the Authorization header or connection_init.",
            )
            await response(scope, receive, send_with_headers)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send_with_headers)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(scope, receive, send_with_headers)
        except Exception as error:
            # The client already got a coded 500 from the app's handler; the log gets the
            # error's type and place, never its message or a stack trace.
            log_unexpected(error)
            if not response_started:
                await internal_error(scope, receive, send_with_headers)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "PAYLOAD_TOO_LARGE", f"Request bodies are limited to {self.max_body_bytes} bytes."
        )
        await response(scope, receive, send)
