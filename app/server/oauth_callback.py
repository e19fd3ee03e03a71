"""Where Google and Microsoft send the user's browser back after consent.

    GET  /oauth/callback/google       ?state=...&code=...   (or error=...)
    POST /oauth/callback/microsoft    form fields state, code, ... (response_mode=form_post;
    GET  /oauth/callback/microsoft    a query answer is accepted too)

The state is checked first (single use, 10 minutes, bound to the owner and token that started
it); only then is the code exchanged (``app.services.connect_gmail`` /
``connect_microsoft``). The answer is a small HTML page ("Account connected — you can close
this window"), or a 303 to the connect's return URL with ``status=connected&account=<id>`` or
``status=error&error=<code>``. A state that is unknown, used or expired gets an error page and
no account. Pages and redirects never carry a token, code, state or verifier; responses are
``no-store`` and the security headers (no referrer) come from ``RequestGuard``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.events import EventBus
from app.models import Account
from app.services.connect_gmail import finish_gmail_connect
from app.services.connect_microsoft import finish_microsoft_connect
from app.services.oauth_state import CALLBACK_PATHS, ConnectFailed, Pending
from app.services.token_sources import NotConfigured
from app.settings import Settings
from app.types import Provider
from resolvers.context import Services
from resolvers.ids import encode_id

logger = logging.getLogger("inbox_api.oauth")

Finish = Callable[[Settings, EventBus, Mapping[str, str]], Awaitable[tuple[Account, Pending]]]
_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"}


async def google_callback(request: Request) -> Response:
    return await _complete(request, finish_gmail_connect, dict(request.query_params))


async def microsoft_callback(request: Request) -> Response:
    if request.method == "POST":
        form = await request.form()
        answer = {key: value for key, value in form.items() if isinstance(value, str)}
    else:
        answer = dict(request.query_params)
    return await _complete(request, finish_microsoft_connect, answer)


def oauth_routes() -> list[Route]:
    return [
        Route(CALLBACK_PATHS[Provider.GMAIL], google_callback, methods=["GET"]),
        Route(CALLBACK_PATHS[Provider.GRAPH], microsoft_callback, methods=["GET", "POST"]),
    ]


async def _complete(request: Request, finish: Finish, answer: Mapping[str, str]) -> Response:
    services: Services = request.app.state.services
    try:
        account, pending = await finish(services.settings, services.events, answer)
    except ConnectFailed as failure:
        logger.info("connect refused: %s", failure.code)
        if failure.return_url is not None:
            return _redirect(failure.return_url, {"status": "error", "error": failure.code})
        return _page(400, "Could not connect the account", f"{failure} Start again from the app.")
    except NotConfigured as failure:
        return _page(503, "Could not connect the account", str(failure))
    logger.info("account %s connected", account.id)
    if pending.return_url is not None:
        account_id = encode_id("Account", account.id)
        return _redirect(pending.return_url, {"status": "connected", "account": account_id})
    return _page(
        200, "Account connected — you can close this window", f"{account.address} is connected."
    )


def _redirect(return_url: str, params: dict[str, str]) -> Response:
    parts = urlsplit(return_url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return RedirectResponse(target, status_code=303, headers=_HEADERS)


def _page(status: int, heading: str, detail: str) -> HTMLResponse:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(heading)}</title></head><body>"
        f"<h1>{escape(heading)}</h1><p>{escape(detail)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
