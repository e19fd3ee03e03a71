"""Graph's throttling, per app per mailbox (PROVIDERS.md M6), plus injected faults and latency.

Every Graph API request passes `MailboxThrottle.admit` before its handler runs and `release`
after. In that order a request is refused with:

    429 + Retry-After  while an earlier Retry-After of the same (app, mailbox) has not elapsed
                       (such a request is logged as "early": a client that ignored the header)
    429/503            an injected fault (`inject_fault`), with Retry-After if one was given
    429 + Retry-After  over the request budget (10,000 per 10 minutes by default)
    429 + Retry-After  a 5th concurrent request (MailboxConcurrency, limit 4 by default)

Every 429 with a Retry-After opens a window for that (app, mailbox) that only time closes.
Stats keep the highest concurrency seen per mailbox and a request log with clock timestamps, so
tests can assert "never more than 4 at once" and "nothing arrived before Retry-After elapsed".
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from emulators.graph_errors import GraphError
from emulators.graph_types import Clock, JSONObject


@dataclass
class RequestRecord:
    at: float
    mailbox: str
    app: str
    method: str
    path: str
    status: int = 0
    early: bool = False
    """It arrived while a Retry-After given to the same app and mailbox was still running."""


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None
    mailbox: str | None


@dataclass(frozen=True)
class Ticket:
    """Proof of admission; hand it back to `release` with the answer's status."""

    key: tuple[str, str]
    record: RequestRecord


class MailboxThrottle:
    def __init__(
        self,
        clock: Clock,
        *,
        max_concurrent: int = 4,
        request_budget: int = 10_000,
        budget_window: float = 600.0,
        concurrency_retry_after: int = 1,
        log_limit: int = 100_000,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.max_concurrent = max_concurrent
        self.request_budget = request_budget
        self.budget_window = budget_window
        self.concurrency_retry_after = concurrency_retry_after
        self.latency = 0.0
        self._active: dict[tuple[str, str], int] = {}
        self._max_seen: dict[str, int] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}
        self._arrivals: dict[tuple[str, str], deque[float]] = {}
        self._faults: list[_Fault] = []
        self._log: deque[RequestRecord] = deque(maxlen=log_limit)
        """The latest requests; the counters below cover every request since the last reset."""
        self._early_count = 0
        self._throttled_count = 0

    def inject_fault(
        self,
        status: int = 429,
        count: int = 1,
        retry_after: int | None = None,
        mailbox: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``mailbox``, or any) with ``status``."""
        with self._lock:
            self._faults.append(_Fault(status, count, retry_after, mailbox))

    def set_latency(self, seconds: float) -> None:
        """Hold every admitted request this long (inside its concurrency slot)."""
        self.latency = seconds

    def admit(self, mailbox: str, app: str, method: str, path: str) -> Ticket:
        now = self._clock()
        key = (app, mailbox)
        with self._lock:
            blocked_until = self._blocked_until.get(key, 0.0)
            record = RequestRecord(now, mailbox, app, method, path, early=now < blocked_until)
            self._log.append(record)
            arrivals = self._arrivals.setdefault(key, deque())
            arrivals.append(now)
            while arrivals and arrivals[0] <= now - self.budget_window:
                arrivals.popleft()
            try:
                if record.early:
                    raise self._throttled(key, blocked_until - now, "Too many requests.")
                self._take_fault(mailbox, key, now)
                if len(arrivals) > self.request_budget:
                    raise self._throttled(
                        key,
                        arrivals[0] + self.budget_window - now,
                        "Application is over its resource limit.",
                        code="ApplicationThrottled",
                    )
                if self._active.get(key, 0) >= self.max_concurrent:
                    raise self._throttled(
                        key,
                        self.concurrency_retry_after,
                        "Application is over its MailboxConcurrency limit.",
                        code="ApplicationThrottled",
                    )
            except GraphError as refusal:
                record.status = refusal.status
                self._early_count += record.early
                self._throttled_count += refusal.status == 429
                raise
            active = self._active.get(key, 0) + 1
            self._active[key] = active
            self._max_seen[mailbox] = max(self._max_seen.get(mailbox, 0), active)
        return Ticket(key, record)

    def release(self, ticket: Ticket, status: int) -> None:
        with self._lock:
            ticket.record.status = status
            self._active[ticket.key] -= 1

    def stats(self) -> JSONObject:
        with self._lock:
            log: list[dict[str, Any]] = [asdict(r) for r in self._log]
            return {
                "maxConcurrent": dict(self._max_seen),
                "requests": log,
                "earlyRequests": self._early_count,
                "throttled": self._throttled_count,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._log.clear()
            self._max_seen.clear()
            self._early_count = self._throttled_count = 0

    def _take_fault(self, mailbox: str, key: tuple[str, str], now: float) -> None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.mailbox in (None, mailbox):
                fault.remaining -= 1
                if fault.status == 429:
                    raise self._throttled(key, fault.retry_after, "Too many requests.")
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                raise GraphError(
                    fault.status,
                    "ServiceUnavailable" if fault.status == 503 else "generalException",
                    "The service is temporarily unavailable.",
                    headers,
                )
        self._faults = [f for f in self._faults if f.remaining > 0]

    def _throttled(
        self,
        key: tuple[str, str],
        retry_after: float | None,
        message: str,
        code: str = "TooManyRequests",
    ) -> GraphError:
        headers: dict[str, str] = {}
        if retry_after is not None:
            seconds = max(1, math.ceil(retry_after))
            headers["Retry-After"] = str(seconds)
            until = self._clock() + seconds
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
        return GraphError(429, code, message, headers)
