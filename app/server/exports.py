"""GET /exports/{archive_id}: the owner's data export (a zip), for a bearer token with the
``owner`` scope of the owner who requested it.

Wiring only: ``app.services.export`` finds the archive with the caller's tenancy. Another
owner's archive answers exactly like an unknown one (404), and so does one covering accounts the
token may not touch; the owner's own export answers 409 before it is ready and 410 once it has
expired. The answer is always a download, never cached.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from app.server.graphql_view import bearer_token
from app.server.http_errors import error_response, unauthenticated
from app.services.errors import Conflict, NotFound
from app.services.export import ready_archive
from app.types import Action
from resolvers.context import Services

_ARCHIVE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def export_download(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """The route endpoint, bound to the process's services."""

    async def download(request: Request) -> Response:
        principal = await services.authenticator.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
        if principal is None:
            return unauthenticated()
        if not principal.can(Action.OWNER):
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "This needs the scope owner.",
                            "extensions": {"code": "FORBIDDEN", "missingScope": "owner"},
                        }
                    ]
                },
                status_code=403,
            )
        archive_id = request.path_params["archive_id"]
        try:
            if not _ARCHIVE_ID.fullmatch(archive_id):
                raise NotFound("export not found")
            archive = await ready_archive(services.settings, principal, archive_id)
        except NotFound:
            return error_response(404, "NOT_FOUND", "No such export.")
        except Conflict as error:
            status = 410 if error.code == "EXPORT_EXPIRED" else 409
            return error_response(status, error.code, str(error))
        return FileResponse(
            archive.path,
            media_type="application/zip",
            filename=archive.filename,
            headers={"cache-control": "private, no-store"},
        )

    return download
