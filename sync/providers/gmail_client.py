"""HTTP to the Gmail API for one mailbox: JSON calls, bounded concurrency and Gmail's errors.

``GmailClient`` is the only part of the Gmail adapter that touches the network. Every call goes
through ``BearerAuth`` (one forced token refresh on 401) and a semaphore of ``concurrency``
slots, and fails with a typed error::

    401 after the refresh                                     -> AuthExpired
    429; 403 userRateLimitExceeded / rateLimitExceeded        -> RateLimited(retry_after)
    404                                                       -> NotFound (callers decide)
    403 insufficientPermissions                               -> PermanentError(INSUFFICIENT_SCOPE)
    5xx, timeouts, resets                                     -> TransientError

``retry_after`` comes from the Retry-After header or, failing that, from the "Retry after
<time>" Gmail writes into quota errors.

Messages are fetched through the batch endpoint (``get_messages``, up to 50 per request, see
``sync.providers.gmail_batch``): against the emulator it moves about twice as many messages per
second as concurrent single calls (figures in ``sync.providers.gmail``). Inner calls are
authenticated by the outer request, so an inner 401 cannot reach ``BearerAuth``'s flow; it calls
``BearerAuth.after_rejection`` itself. Failed inner calls are sent again, once by default, in one
smaller batch; nothing else is retried and nothing sleeps: the engine owns backoff. A call
whose request has left runs to its end even when its caller is cancelled (``finish_in_flight``:
httpcore leaks the socket of a TLS handshake cancelled half-way).

Never logs; errors carry the Gmail method and status, never a token or a response body.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from httpx import QueryParams

from sync.providers.adapter import TokenSource
from sync.providers.errors import (
    AuthExpired,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)
from sync.providers.gmail_batch import decode_batch, encode_batch, new_boundary
from sync.providers.http import (
    DEFAULT_TIMEOUT,
    BearerAuth,
    error_for_status,
    finish_in_flight,
    gravest_error,
    json_object,
    transport_errors,
)

JSON = dict[str, Any]
Params = Mapping[str, str | int | Sequence[str]]

API_PATH = "/gmail/v1/users/me"
BATCH_PATH = "/batch/gmail/v1"
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
_RETRY_AT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


class NotFound(PermanentError):
    """Gmail answered 404: the message (or the history position) does not exist any more."""

    code = "NOT_FOUND"


class GmailClient:
    """Gmail API calls for the user a token source speaks for."""

    def __init__(
        self,
        base_url: str,
        token_source: TokenSource,
        *,
        http: httpx.AsyncClient | None = None,
        concurrency: int = 8,
        max_retries: int = 1,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be at least 1 and max_retries at least 0")
        self._api = base_url.rstrip("/") + API_PATH
        self._batch_url = base_url.rstrip("/") + BATCH_PATH
        self._auth = BearerAuth(token_source)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT,
            limits=httpx.Limits(
                max_connections=concurrency,
                max_keepalive_connections=concurrency,
                # Below the 5 s idle timeout common to servers (uvicorn's, the emulator's):
                # reusing a connection just as the server closes it fails the whole batch.
                keepalive_expiry=4.0,
            ),
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._max_retries = max_retries
        self._now = now

    async def get(self, path: str, what: str, params: Params | None = None) -> JSON:
        """GET ``/gmail/v1/users/me`` + ``path``; ``what`` names the Gmail method in errors."""
        async with self._slots:
            with transport_errors(what):
                response = await finish_in_flight(
                    partial(self._http.get, self._api + path, params=params, auth=self._auth)
                )
            if response.status_code >= 400:
                raise self._error(response, what)
            return json_object(response, what)

    async def send(
        self, http_method: str, path: str, what: str, body: JSON | None = None
    ) -> JSON | None:
        """A write call (POST, DELETE...) to ``/gmail/v1/users/me`` + ``path``: its JSON
        answer, or None when Gmail answers without a body (204). Never retried here."""
        async with self._slots:
            with transport_errors(what):
                response = await finish_in_flight(
                    partial(
                        self._http.request,
                        http_method,
                        self._api + path,
                        json=body,
                        auth=self._auth,
                    )
                )
            if response.status_code >= 400:
                raise self._error(response, what)
            return None if response.status_code == 204 else json_object(response, what)

    async def get_message(self, message_id: str, params: Params) -> JSON:
        """One ``messages.get``; ``NotFound`` if it does not exist."""
        return await self.get(f"/messages/{message_id}", "messages.get", params)

    async def get_messages(self, message_ids: Sequence[str], params: Params) -> list[JSON | None]:
        """``messages.get`` of up to ``MAX_CALLS`` messages in one batch request, in the order
        of ``message_ids``; None for a message that no longer exists (deleted since it was
        listed: history will say so).

        Inner calls that fail with 401, a rate limit or a transient error are sent again,
        together in one smaller batch, up to ``max_retries`` times (after one shared token
        refresh if they were refused with 401); what still fails raises its gravest error.
        """
        found: dict[int, JSON | None] = {}
        pending = list(range(len(message_ids)))
        for attempt in range(self._max_retries + 1):
            refreshes_seen = self._auth.refreshes
            targets = [
                f"{API_PATH}/messages/{message_ids[i]}?{QueryParams(params)}" for i in pending
            ]
            answers = await self._batch(targets)
            errors: dict[int, ProviderError] = {}
            for position, index in enumerate(pending):
                outcome = self._inner_outcome(answers.get(position))
                if isinstance(outcome, ProviderError):
                    errors[index] = outcome
                else:
                    found[index] = outcome
            if not errors:
                return [found[index] for index in range(len(message_ids))]
            if attempt < self._max_retries and any(
                isinstance(e, AuthExpired) for e in errors.values()
            ):
                await self._auth.after_rejection(refreshes_seen)
            pending = list(errors)
        raise gravest_error(errors.values())

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _batch(self, targets: Sequence[str]) -> dict[int, httpx.Response]:
        boundary = new_boundary()
        async with self._slots:
            with transport_errors("batch"):
                response = await finish_in_flight(
                    partial(
                        self._http.post,
                        self._batch_url,
                        content=encode_batch(targets, boundary),
                        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
                        auth=self._auth,
                    )
                )
        if response.status_code >= 400:
            raise self._error(response, "batch")
        return decode_batch(response.headers.get("content-type", ""), response.content)

    def _inner_outcome(self, response: httpx.Response | None) -> JSON | ProviderError | None:
        """A message, None if it is gone, or the error to retry (or raise if permanent)."""
        if response is None:
            return TransientError("messages.get: no answer in the batch")
        if response.status_code >= 400:
            error = self._error(response, "messages.get")
            if isinstance(error, NotFound):
                return None
            if isinstance(error, PermanentError):
                raise error  # asking again would get the same answer
            return error
        try:
            return json_object(response, "messages.get")
        except TransientError as error:
            return error

    def _error(self, response: httpx.Response, what: str) -> ProviderError:
        status = response.status_code
        reason, message = _reason(response)
        if status == 404:
            return NotFound(f"{what}: not found")
        if status == 403 and reason == "insufficientPermissions":
            return PermanentError(f"{what}: scope not granted", code="INSUFFICIENT_SCOPE")
        error = error_for_status(
            response, what, rate_limited=status == 403 and reason in RATE_LIMIT_REASONS
        )
        if isinstance(error, RateLimited) and error.retry_after is None:
            error.retry_after = self._retry_at(message)
        return error

    def _retry_at(self, message: str) -> float | None:
        match = _RETRY_AT.search(message)
        if match is None:
            return None
        when = datetime.fromisoformat(match.group(1))
        return max((when - self._now()).total_seconds(), 0.0)


def _reason(response: httpx.Response) -> tuple[str, str]:
    """Gmail's ``errors[0].reason`` and ``error.message``, or empty strings."""
    try:
        error = response.json().get("error", {})
        message = error.get("message", "")
        reason = error.get("errors", [{}])[0].get("reason", "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ""
    return (reason, message) if isinstance(reason, str) and isinstance(message, str) else ("", "")
