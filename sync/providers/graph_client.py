"""HTTP to Microsoft Graph for one mailbox: auth, Prefer headers, concurrency and typed errors.

`GraphClient` is the only part of the Graph adapter that touches the network. Every request is a
GET with `Prefer: IdType="ImmutableId", odata.maxpagesize=N` (M3, M7) through the shared
`sync.providers.http` plumbing (`BearerAuth`: one forced token refresh on 401, shared by the
requests rejected together), and fails with a typed error:

    410, or code syncStateNotFound / resyncRequired / InvalidSyncStateData -> DeltaGone (M5;
                                                          the adapter restarts that folder)
    404                                                 -> ItemNotFound (callers decide)
    401 after the refresh -> AuthExpired; 429 -> RateLimited(retry_after = Retry-After seconds);
    5xx, timeouts, resets -> TransientError; anything else -> PermanentError   (`error_for_status`)

At most ``max_concurrency`` requests are in flight at once (Graph allows 4 concurrent requests
per app per mailbox, M6): the semaphore lives here, so one client - and one adapter - per mailbox.
``get_json_batch`` sends up to 20 GETs as one JSON batch (``POST /v1.0/$batch``) and gives each
its own answer or typed error, exactly as single GETs would; a batch holds every slot while it
runs (Graph runs 4 of its requests at once against the same limit). After a 429, the requests
that were waiting for a slot when it came fail with RateLimited
instead of going out (so none reaches the mailbox before the Retry-After has passed); the calls
made later are the engine's to time.

It never sends the bearer token to a host other than ``base_url`` (links come back from the
server and from stored cursors), never sleeps (the engine honours Retry-After), never logs, and
errors name the call and the status, never a token or a response body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from functools import partial
from typing import Any, TypeVar

import httpx

from sync.providers.adapter import TokenSource
from sync.providers.errors import PermanentError, ProviderError, RateLimited, TransientError
from sync.providers.http import (
    DEFAULT_TIMEOUT,
    BearerAuth,
    error_for_status,
    finish_in_flight,
    json_object,
    transport_errors,
)

API_ROOT = "/v1.0/me"
VERSION_ROOT = "/v1.0"
BATCH_PATH = f"{VERSION_ROOT}/$batch"
MAX_BATCH_REQUESTS = 20
SYNC_STATE_CODES = frozenset({"syncStateNotFound", "resyncRequired", "InvalidSyncStateData"})
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
        self._auth = BearerAuth(token_source)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._prefer = f'IdType="ImmutableId", odata.maxpagesize={page_size}'
        self._max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._batch_turn = asyncio.Lock()  # one batch at a time collects every slot
        self._throttled = 0  # how many 429s this client has met
        self._last_retry_after: float | None = None

    def relative(self, link: str) -> str:
        """A link from Graph, without our base URL (what cursors store); refuses other hosts."""
        if link.startswith(f"{self.base_url}/"):
            return link[len(self.base_url) :]
        if link.startswith("/"):
            return link
        raise PermanentError("Graph returned a link to another host", code="FOREIGN_LINK")

    async def get_json(self, link: str, what: str) -> dict[str, Any]:
        """GET a path under ``base_url`` or a link Graph gave; ``what`` names the call in errors."""
        return json_object(await self._get(link, what), what)

    async def get_json_batch(
        self, links: Sequence[str], what: str
    ) -> list[dict[str, Any] | ProviderError]:
        """GET up to ``MAX_BATCH_REQUESTS`` links in one JSON batch (``POST /v1.0/$batch``):
        per link, in order, its JSON answer or the typed error a single GET would have raised
        (ItemNotFound, RateLimited with its Retry-After...). The batch holds every slot while
        it runs: Graph runs up to 4 of its requests at once against the mailbox's limit (M6)."""
        if not 0 < len(links) <= MAX_BATCH_REQUESTS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_REQUESTS} requests")
        requests = [
            {
                "id": str(position),
                "method": "GET",
                "url": self._versioned(link),
                "headers": {"Prefer": self._prefer},
            }
            for position, link in enumerate(links)
        ]
        throttled_before = self._throttled
        async with self._batch_turn:
            for _ in range(self._max_concurrency):
                await self._slots.acquire()
        try:
            if self._throttled > throttled_before:
                raise RateLimited(
                    f"{what}: throttled meanwhile", retry_after=self._last_retry_after
                )
            response = await self._request(
                "POST", BATCH_PATH, what, json={"requests": requests}, held=True
            )
        finally:
            for _ in range(self._max_concurrency):
                self._slots.release()
        answers = {
            str(answer.get("id")): answer
            for answer in json_object(response, what).get("responses") or ()
            if isinstance(answer, dict)
        }
        return [self._inner_outcome(answers.get(str(n)), what) for n in range(len(links))]

    async def get_bytes(self, link: str, what: str) -> bytes:
        return (await self._get(link, what)).content

    async def send(
        self, http_method: str, path: str, what: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A write call (PATCH, POST, DELETE) to a path under ``base_url``: its JSON answer, or
        None for 202/204 answers. Never retried here."""
        return _answer(await self._request(http_method, path, what, json=body), what)

    async def send_text(
        self, http_method: str, path: str, what: str, text: str
    ) -> dict[str, Any] | None:
        """A write call with a ``text/plain`` body (MIME for ``sendMail`` or a new draft): its
        JSON answer, or None for 202/204 answers."""
        response = await self._request(
            http_method,
            path,
            what,
            content=text.encode("ascii"),
            headers={"Content-Type": "text/plain"},
        )
        return _answer(response, what)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _get(self, link: str, what: str) -> httpx.Response:
        return await self._request("GET", link, what)

    def _versioned(self, link: str) -> str:
        """A link as a batch's inner ``url``: relative to the version root."""
        path = self.relative(link)
        if not path.startswith(f"{VERSION_ROOT}/"):
            raise PermanentError("Graph link outside /v1.0", code="FOREIGN_LINK")
        return path[len(VERSION_ROOT) :]

    def _inner_outcome(
        self, answer: dict[str, Any] | None, what: str
    ) -> dict[str, Any] | ProviderError:
        """One batch answer as its JSON body or the typed error of that request."""
        if answer is None:
            return TransientError(f"{what}: no answer in the batch")
        status = answer.get("status")
        body = answer.get("body")
        if not isinstance(status, int):
            return TransientError(f"{what}: malformed batch answer")
        headers = answer.get("headers")
        response = httpx.Response(
            status,
            headers={str(k): str(v) for k, v in headers.items()}
            if isinstance(headers, dict)
            else {},
            json=body,
        )
        if status >= 400:
            error = _error(response, what)
            self._note_throttling(error)
            return error
        if not isinstance(body, dict):
            return TransientError(f"{what}: batch answer is not a JSON object")
        return body

    def _note_throttling(self, error: ProviderError) -> None:
        if isinstance(error, RateLimited):
            # Counted before the slot goes to a waiting request.
            self._throttled += 1
            self._last_retry_after = error.retry_after

    async def _request(
        self,
        http_method: str,
        link: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        held: bool = False,
        **content: Any,
    ) -> httpx.Response:
        url = f"{self.base_url}{self.relative(link)}"
        throttled_before = self._throttled
        # The slot is held until the body is read: Graph counts a request as running until then.
        # A batch (``held``) has taken its slots already.
        async with contextlib.nullcontext() if held else self._slots:
            if self._throttled > throttled_before:
                # Graph throttled the mailbox while this request waited for its slot: it must
                # not go out before the Retry-After has passed (M6), and the engine waits.
                raise RateLimited(
                    f"{what}: throttled meanwhile", retry_after=self._last_retry_after
                )
            with transport_errors(what):
                response = await finish_in_flight(
                    partial(
                        self._http.request,
                        http_method,
                        url,
                        headers={"Prefer": self._prefer, **(headers or {})},
                        auth=self._auth,
                        **content,
                    )
                )
            if response.status_code >= 400:
                error = _error(response, what)
                self._note_throttling(error)
                raise error
        return response


def _answer(response: httpx.Response, what: str) -> dict[str, Any] | None:
    """The JSON answer of a write call, or None for 202/204 answers."""
    if response.status_code in (202, 204) or not response.content:
        return None
    return json_object(response, what)


def _error(response: httpx.Response, what: str) -> ProviderError:
    status = response.status_code
    if status == 410 or _graph_error_code(response) in SYNC_STATE_CODES:
        return DeltaGone(f"{what}: delta token expired (HTTP {status})")
    if status == 404:
        return ItemNotFound(f"{what}: not found")
    return error_for_status(response, what)


def _graph_error_code(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return code if isinstance(code, str) else ""
