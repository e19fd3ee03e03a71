"""What every Gmail API call goes through before its handler runs, in Google's order.

1. ``Authorization: Bearer`` must name a live access token of the identity server -> else 401;
2. ``userId`` must be ``me`` or the token's own address -> else 403 "Delegation denied";
3. the token's scopes must allow the method -> else 403 insufficientPermissions;
4. concurrent calls per user above the configured cap -> 429 "Too many concurrent requests";
5. an armed fault for this method/user fires (delay, then maybe an error);
6. the quota is charged -> 403 userRateLimitExceeded when the minute's units are spent.

Every call, failed or not, is counted in the stats with the units it cost.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gmail_errors import GmailError
from emulators.gmail_faults import FaultInjector
from emulators.gmail_quota import QuotaMeter
from emulators.gmail_stats import GmailStats
from emulators.gmail_store import GmailStore, Mailbox
from emulators.google_identity import GoogleIdentity

SCOPE_FULL = "https://mail.google.com/"
_GMAIL = "https://www.googleapis.com/auth/gmail."
SCOPE_MODIFY = _GMAIL + "modify"
SCOPE_READONLY = _GMAIL + "readonly"
SCOPE_METADATA = _GMAIL + "metadata"
SCOPE_COMPOSE = _GMAIL + "compose"
SCOPE_SEND = _GMAIL + "send"
SCOPE_LABELS = _GMAIL + "labels"

READ = frozenset({SCOPE_FULL, SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA})
WRITE = frozenset({SCOPE_FULL, SCOPE_MODIFY})
DELETE = frozenset({SCOPE_FULL})
SEND = frozenset({SCOPE_FULL, SCOPE_MODIFY, SCOPE_COMPOSE, SCOPE_SEND})
COMPOSE = frozenset({SCOPE_FULL, SCOPE_MODIFY, SCOPE_COMPOSE})
LABELS_READ = READ | {SCOPE_LABELS}
LABELS_WRITE = WRITE | {SCOPE_LABELS}


@dataclass(frozen=True)
class Caller:
    """The authenticated user a handler works for."""

    email: str
    scopes: frozenset[str]
    mailbox: Mailbox

    @property
    def metadata_only(self) -> bool:
        """Only gmail.metadata among the read scopes: no bodies, no ``q``."""
        return SCOPE_METADATA in self.scopes and not (READ - {SCOPE_METADATA}) & self.scopes


Handler = Callable[[Request, Caller], Awaitable[Response]]


def error_response(error: GmailError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.code, headers=error.headers)


class Gateway:
    """Builds Gmail routes whose handlers run only after the checks above."""

    def __init__(
        self,
        identity: GoogleIdentity,
        store: GmailStore,
        quota: QuotaMeter,
        faults: FaultInjector,
        stats: GmailStats,
    ) -> None:
        self._identity = identity
        self._store = store
        self._quota = quota
        self._faults = faults
        self._stats = stats
        self.max_concurrent_requests: int | None = None
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()

    def route(
        self,
        path: str,
        http_method: str,
        method: str,
        scopes: Collection[str],
        handler: Handler,
    ) -> Route:
        """A route for Gmail method ``method`` (e.g. ``messages.get``) at ``path``."""
        allowed = frozenset(scopes)

        async def endpoint(request: Request) -> Response:
            return await self._call(request, method, allowed, handler)

        return Route(path, endpoint, methods=[http_method], name=method)

    async def _call(
        self, request: Request, method: str, allowed: frozenset[str], handler: Handler
    ) -> Response:
        user, units = "", 0
        try:
            caller = self._caller(request)
            user = caller.email
            if not allowed & caller.scopes:
                raise GmailError.insufficient_scope()
            with self._concurrency_slot(user):
                # A slow call holds its slot while it is slow, as on Google's side.
                fault = self._faults.take(method, user)
                if fault is not None:
                    await asyncio.sleep(fault.delay)
                    if fault.error is not None:
                        raise fault.error
                units = self._quota.charge(user, method)
                response = await handler(request, caller)
        except GmailError as error:
            response = error_response(error)
        self._stats.record(method, user, response.status_code, units)
        return response

    def _caller(self, request: Request) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        info = self._identity.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            raise GmailError.unauthenticated()
        user_id = request.path_params.get("user_id", "me")
        if user_id != "me" and user_id.lower() != info.email:
            raise GmailError.delegation_denied(user_id)
        return Caller(info.email, info.scopes, self._store.mailbox(info.email))

    @contextmanager
    def _concurrency_slot(self, user: str) -> Iterator[None]:
        with self._lock:
            cap = self.max_concurrent_requests
            if cap is not None and self._in_flight[user] >= cap:
                raise GmailError(429, "Too many concurrent requests for user.", "rateLimitExceeded")
            self._in_flight[user] += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[user] -= 1
