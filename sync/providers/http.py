"""HTTP plumbing every REST adapter shares: bearer auth that refreshes on 401, Retry-After, errors,
and running a mailbox's calls concurrently (``gather_concurrently``).

Provider-neutral: nothing here knows Gmail or Graph. An adapter builds on it like this::

    auth = BearerAuth(token_source)
    with transport_errors("messages.get"):
        response = await client.get(url, auth=auth)
    if response.status_code >= 400:
        raise error_for_status(response, "messages.get")   # after its own special cases
    body = json_object(response, "messages.get")

The status mapping (``error_for_status``)::

    401 (still, after BearerAuth's one refresh)  -> AuthExpired
    429, or any status the caller says is a rate limit -> RateLimited(retry_after from the header)
    408, 5xx                                     -> TransientError
    anything else                                -> PermanentError(code="HTTP_<status>")
    timeouts, resets, refused connections        -> TransientError   (``transport_errors``)

A request cancelled while httpcore is in its TLS handshake leaks its socket (httpcore's
``start_tls`` closes the stream on ``Exception`` only, and cancellation is not one), so an
adapter sends through ``finish_in_flight``: a request that has left runs to its end (bounded by
the client's timeout) even when its caller is cancelled, and the caller is cancelled after.

When concurrent calls fail, ``gather_concurrently`` cancels the rest and raises the gravest
``ProviderError`` (``AuthRevoked`` > ``AuthExpired`` > ``PermanentError`` > ``RateLimited``, the
longest Retry-After first > ``TransientError`` > any other), never an exception group.

Error messages name the call and the status, never a token, URL query or response body; this
module never logs and never sleeps: backing off is the sync engine's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from sync.providers.adapter import TokenSource
from sync.providers.errors import (
    AuthExpired,
    AuthRevoked,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# Failures of the network or of the other side's servers, not of our request.
_TRANSIENT_TRANSPORT = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)
# When several concurrent calls fail, the engine hears about the one that matters most.
_SEVERITY: tuple[type[ProviderError], ...] = (
    AuthRevoked,
    AuthExpired,
    PermanentError,
    RateLimited,
    TransientError,
)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` from a ``TokenSource``; on 401 one forced refresh, one retry.

    Concurrent requests that all meet the same expired token share one refresh: each request
    remembers how many refreshes had happened when it was sent (``refreshes``), and only the
    first to report its 401 under the lock refreshes; the others reuse that token. A second 401
    is returned to the caller (who raises ``AuthExpired``); ``AuthRevoked`` from the token
    source propagates. Calls that see a 401 outside this flow (the inner calls of a batch
    request) use ``after_rejection`` the same way.
    """

    requires_request_body = True  # a retried request must be able to send its body again

    def __init__(self, token_source: TokenSource) -> None:
        self._token_source = token_source
        self._lock = asyncio.Lock()
        self._refreshes = 0
        self._refreshed_token = ""

    @property
    def refreshes(self) -> int:
        """How many forced refreshes have happened; read it before sending a request."""
        return self._refreshes

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        refreshes_seen = self._refreshes
        request.headers["Authorization"] = f"Bearer {await self._token_source(False)}"
        response = yield request
        if response.status_code != 401:
            return
        request.headers["Authorization"] = f"Bearer {await self.after_rejection(refreshes_seen)}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("BearerAuth needs an httpx.AsyncClient: its token source is async")

    async def after_rejection(self, refreshes_seen: int) -> str:
        """The token to retry with after a 401 to a request sent when ``refreshes`` was
        ``refreshes_seen``: a forced refresh, unless another request already did one since."""
        async with self._lock:
            if self._refreshes == refreshes_seen:
                self._refreshed_token = await self._token_source(True)
                self._refreshes += 1
            return self._refreshed_token


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_for_status(
    response: httpx.Response, what: str, *, rate_limited: bool = False
) -> ProviderError:
    """The typed error for a failed ``response`` of call ``what`` (see the module docstring).

    ``rate_limited`` marks a status the provider uses for throttling besides 429 (Gmail's 403
    ``userRateLimitExceeded``).
    """
    status = response.status_code
    if status == 401:
        return AuthExpired(f"{what}: access token refused after a refresh")
    if status == 429 or rate_limited:
        return RateLimited(
            f"{what}: throttled (HTTP {status})",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 408 or status >= 500:
        return TransientError(f"{what}: HTTP {status}")
    return PermanentError(f"{what}: HTTP {status}", code=f"HTTP_{status}")


@contextmanager
def transport_errors(what: str) -> Iterator[None]:
    """Turn httpx's transport exceptions raised inside the block into typed errors."""
    try:
        yield
    except _TRANSIENT_TRANSPORT as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:  # unsupported protocol and the like: our own mistake
        raise PermanentError(f"{what}: {type(exc).__name__}", code="TRANSPORT") from exc


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object a successful response carries; a mangled one counts as transient."""
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(f"{what}: response is not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError(f"{what}: response is not a JSON object")
    return body


async def gather_concurrently(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``calls`` concurrently and return their results in order; on failure cancel the rest
    and raise the gravest ``ProviderError`` (see the module docstring) itself.

    asyncio.gather would leave the others running after the caller gave up, and a bare
    TaskGroup would wrap a RateLimited into an exception group the engine does not expect. A
    failure that is no ``ProviderError`` (a bug) keeps the whole group and every traceback.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(call)) for call in calls]
    except BaseExceptionGroup as failures:
        errors = [e for e in failures.exceptions if isinstance(e, ProviderError)]
        if len(errors) < len(failures.exceptions):
            raise
        raise gravest_error(errors) from None
    return [task.result() for task in tasks]


async def _awaited(call: Awaitable[T]) -> T:
    return await call


def gravest_error(errors: Iterable[ProviderError]) -> ProviderError:
    """The error of several that the engine must hear about (order in the module docstring)."""
    return min(errors, key=_severity)


def _severity(error: ProviderError) -> tuple[int, float]:
    rank = next((i for i, kind in enumerate(_SEVERITY) if isinstance(error, kind)), len(_SEVERITY))
    # Among rate limits, the longest wait is the one to honour.
    wait = (error.retry_after or 0.0) if isinstance(error, RateLimited) else 0.0
    return rank, -wait


async def finish_in_flight(send: Callable[[], Awaitable[T]]) -> T:
    """Await ``send()`` (an HTTP request); if the caller is cancelled meanwhile, let the request
    end first (it holds a connection that must go back to the pool or be closed), then raise
    the ``CancelledError``."""
    # One turn of the loop first: a caller whose sibling just failed (the slot it waited for
    # was freed by that failure) is cancelled here, before its request leaves.
    await asyncio.sleep(0)
    task = asyncio.ensure_future(send())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieve_outcome)
        await asyncio.wait([task])
        raise


def _retrieve_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # the caller has gone: a failure of the request is nobody's to hear
