"""Microsoft Graph's error answers.

Every failure the Graph emulator reports is a `GraphError`, rendered in Graph's shape:

    {"error": {"code": "...", "message": "...",
               "innerError": {"date": "...", "request-id": "...", "client-request-id": "..."}}}

with the status code and any headers (Retry-After, WWW-Authenticate) that Graph sends with it.
The store raises these too, so a Python control and an HTTP call fail the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

GRAPH_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"


class GraphError(Exception):
    """A Graph error answer: HTTP status, Graph error code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_response(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id", request_id)
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = {"request-id": request_id, "client-request-id": client_request_id}
        return JSONResponse(
            body, status_code=self.status, headers=headers | self.headers, media_type=GRAPH_JSON
        )


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def invalid_request(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


def sync_state_not_found() -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired or invalid: "
        "start a new initial synchronization.",
    )
