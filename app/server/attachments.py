"""GET /attachments/{id}: an attachment's bytes, streamed, for a bearer token with
``messages:content`` on the attachment's account.

Wiring only: ``app.services.attachments`` finds the attachment with the caller's tenancy and
fetches its bytes. The answer is always a download (``Content-Disposition: attachment`` with an
RFC 5987 ``filename*``), never rendered: ``nosniff``, a sandboxing CSP, and a content type from
a short list of inert types (anything else is ``application/octet-stream``). A foreign id
answers exactly like an unknown one (404). ``X-Content-Type-Options: nosniff`` comes with every
response from ``RequestGuard``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from app.server.graphql_view import bearer_token
from app.server.http_errors import error_response, unauthenticated
from app.services.attachments import ContentUnavailable, open_attachment
from app.services.errors import NotFound
from app.types import Action
from resolvers.context import Services
from resolvers.ids import decode_typed

_INERT_TYPES = frozenset(
    {
        "application/pdf",
        "application/zip",
        "image/gif",
        "image/jpeg",
        "image/png",
        "image/webp",
        "text/calendar",
        "text/csv",
        "text/plain",
        "audio/mpeg",
        "video/mp4",
    }
)
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/]')


def safe_content_type(declared: str) -> str:
    """The declared type when it is inert, else ``application/octet-stream``."""
    essence = declared.split(";", 1)[0].strip().lower()
    return essence if essence in _INERT_TYPES else "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name as RFC 5987 UTF-8."""
    cleaned = _UNSAFE_FILENAME.sub("_", filename).strip() or "attachment"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def attachment_download(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """The route endpoint, bound to the process's services."""

    async def download(request: Request) -> Response:
        principal = await services.authenticator.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
        if principal is None:
            return unauthenticated()
        if not principal.can(Action.MESSAGES_CONTENT):
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "This needs the scope messages:content.",
                            "extensions": {"code": "FORBIDDEN", "missingScope": "messages:content"},
                        }
                    ]
                },
                status_code=403,
            )
        number = decode_typed(request.path_params["attachment_id"], "Attachment")
        try:
            if number is None:
                raise NotFound("attachment not found")
            found = await open_attachment(principal, number)
        except NotFound:
            return error_response(404, "NOT_FOUND", "No such attachment.")
        except ContentUnavailable as error:
            return error_response(503, error.code, str(error))
        return StreamingResponse(
            found.chunks,
            media_type=safe_content_type(found.content_type),
            headers={
                "content-disposition": content_disposition(found.filename),
                "content-security-policy": "default-src 'none'; sandbox",
                "cache-control": "private, no-store",
            },
        )

    return download
