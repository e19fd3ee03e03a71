"""HTTP to Microsoft Graph for one mailbox: auth, Prefer headers, concurrency and typed errors.

`GraphClient` is the only part of the Graph adapter that touches the network. Every request goes

    token_source(False) -> GET with Bearer, Prefer: IdType="ImmutableId", odata.maxpagesize=N
      401        -> token_source(True), once, shared by concurrent callers -> retry -> AuthExpired
      429        -> RateLimited(retry_after = the Retry-After seconds)   (never sleeps itself)
      5xx, timeouts, resets                          -> TransientError
      410, syncStateNotFound, resyncRequired, ...    -> DeltaGone   (the adapter restarts a folder)
      404        -> ItemNotFound;  other refusals    -> PermanentError

with at most ``max_concurrency`` requests in flight (Graph allows 4 concurrent requests per app
per mailbox, M6): the semaphore lives here, so one client - and one adapter - per mailbox.

It must never send the bearer token to another host than ``base_url`` (links come back from the
server and from stored cursors), never log anything, and never put a token or a response body
into an error: errors carry the status and Graph's short error code only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

from sync.providers.errors import (
    AuthExpired,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)

TokenSource = Callable[[bool], Awaitable[str]]
"""force_refresh -> access token; raises AuthRevoked on invalid_grant (adapter.py's shape)."""

API_ROOT = "/v1.0/me"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
SYNC_STATE_CODES = frozenset({"syncStateNotFound", "resyncRequired", "InvalidSyncStateData"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
T = TypeVar("T")


class DeltaGone(ProviderError):
    """A delta or skip token is dead (M5). The adapter restarts that folder and never lets
    this escape; the engine only ever sees CursorExpired when everything must restart."""

    code = "DELTA_GONE"


class ItemNotFound(PermanentError):
    """Graph answered 404: the message, folder or attachment does not exist (any more)."""

    code = "NOT_FOUND"


class GraphClient:
    """GET requests to one mailbox's Graph API, shaped into JSON or bytes or typed errors."""

    def __init__(
        self,
        base_url: str,
        token_source: TokenSource,
        *,
        http: httpx.AsyncClient | None = None,
        page_size: int = 50,
        max_concurrency: int = 4,
    ) -> None:
        if page_size < 1 or max_concurrency < 1:
            raise ValueError("page_size and max_concurrency must be positive")
        self.base_url = base_url.rstrip("/")
        self._token_source = token_source
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._prefer = f'IdType="ImmutableId", odata.maxpagesize={page_size}'
        self._slots = asyncio.Semaphore(max_concurrency)
        self._refresh_lock = asyncio.Lock()
        self._refreshes = 0
        self._refreshed = ""

    def relative(self, link: str) -> str:
        """A link from Graph, without our base URL (what cursors store); refuses other hosts."""
        if link.startswith(f"{self.base_url}/"):
            return link[len(self.base_url) :]
        if link.startswith("/"):
            return link
        raise PermanentError("Graph returned a link to another host", code="FOREIGN_LINK")

    async def get_json(self, link: str) -> dict[str, Any]:
        response = await self._get(link)
        try:
            body = response.json()
        except ValueError:
            raise TransientError("Graph answered with malformed JSON") from None
        if not isinstance(body, dict):
            raise TransientError("Graph answered with unexpected JSON")
        return body

    async def get_bytes(self, link: str) -> bytes:
        return (await self._get(link)).content

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _get(self, link: str) -> httpx.Response:
        url = f"{self.base_url}{self.relative(link)}"
        refreshes_before = self._refreshes
        response = await self._send(url, await self._token_source(False))
        if response.status_code == 401:
            response = await self._send(url, await self._refreshed_token(refreshes_before))
            if response.status_code == 401:
                raise AuthExpired("Graph rejected a freshly refreshed access token")
        _raise_for_status(response)
        return response

    async def _send(self, url: str, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Prefer": self._prefer}
        # The slot is held until the body is read: Graph counts a request as running until then.
        async with self._slots:
            try:
                return await self._http.get(url, headers=headers)
            except httpx.TimeoutException as error:
                raise TransientError("Graph timed out") from error
            except httpx.TransportError as error:
                raise TransientError("Graph could not be reached") from error

    async def _refreshed_token(self, refreshes_before: int) -> str:
        # Requests rejected together share one refresh: a refresh that finished after this
        # request was sent already answers its 401.
        async with self._refresh_lock:
            if self._refreshes == refreshes_before:
                self._refreshed = await self._token_source(True)
                self._refreshes += 1
            return self._refreshed


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    code = _graph_error_code(response)
    described = f"Graph answered {status} {code}".rstrip()
    if status == 410 or code in SYNC_STATE_CODES:
        raise DeltaGone(described)
    if status == 429:
        raise RateLimited(described, retry_after=_retry_after(response))
    if status in TRANSIENT_STATUSES:
        raise TransientError(described)
    if status == 404:
        raise ItemNotFound(described)
    if status == 403:
        raise PermanentError(described, code="ACCESS_DENIED")
    raise PermanentError(described, code=f"GRAPH_{status}")


def _graph_error_code(response: httpx.Response) -> str:
    """Graph's short error code (e.g. ErrorItemNotFound), the only part of a body we repeat."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else ""


def _retry_after(response: httpx.Response) -> float | None:
    # Graph sends whole seconds (M6); an HTTP-date or garbage leaves the back-off to the engine.
    raw = response.headers.get("Retry-After", "").strip()
    return float(raw) if raw.isascii() and raw.isdigit() else None


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; on the first error cancel the rest and raise that error itself.

    asyncio.gather would leave the others running after the caller gave up, and a TaskGroup
    would wrap a RateLimited into an ExceptionGroup the engine does not expect.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
