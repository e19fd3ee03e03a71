"""Fault injection for the Gmail emulator: the next N calls fail or are slow, as Google's can be.

Armed faults are consumed first come, first served by the calls they match (optionally only one
method, e.g. ``messages.get``, or one user). Kinds and what the call then answers:

    "429"                  429 rateLimitExceeded "Too many concurrent requests for user."
    "403_rate_limit"       403 rateLimitExceeded (usageLimits) "Rate Limit Exceeded"
    "403_user_rate_limit"  403 userRateLimitExceeded (usageLimits)
    "500"                  500 backendError "Backend Error"
    "503"                  503 backendError "The service is currently unavailable."
    "latency"              the call succeeds after ``delay`` seconds

Any kind may also carry ``delay`` (wait, then fail) and ``retry_after`` (a Retry-After header,
which Google sends only sometimes: clients must cope with and without it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

from emulators.gmail_errors import GmailError


class FaultKind(StrEnum):
    TOO_MANY_REQUESTS = "429"
    RATE_LIMIT = "403_rate_limit"
    USER_RATE_LIMIT = "403_user_rate_limit"
    BACKEND_ERROR = "500"
    UNAVAILABLE = "503"
    LATENCY = "latency"


_ERRORS: dict[FaultKind, tuple[int, str, str, str]] = {
    FaultKind.TOO_MANY_REQUESTS: (
        429,
        "Too many concurrent requests for user.",
        "rateLimitExceeded",
        "global",
    ),
    FaultKind.RATE_LIMIT: (403, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits"),
    FaultKind.USER_RATE_LIMIT: (
        403,
        "User-rate limit exceeded.",
        "userRateLimitExceeded",
        "usageLimits",
    ),
    FaultKind.BACKEND_ERROR: (500, "Backend Error", "backendError", "global"),
    FaultKind.UNAVAILABLE: (503, "The service is currently unavailable.", "backendError", "global"),
}


@dataclass(frozen=True)
class Fault:
    """What one call suffers: a delay, then possibly an error."""

    delay: float
    error: GmailError | None


@dataclass
class _Armed:
    kind: FaultKind
    remaining: int
    delay: float
    method: str | None
    user: str | None
    retry_after: int | None

    def matches(self, method: str, user: str) -> bool:
        return self.method in (None, method) and self.user in (None, user)


class FaultInjector:
    """Armed faults, shared by the server thread and the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.served = 0

    def inject(
        self,
        kind: FaultKind | str,
        *,
        times: int = 1,
        delay: float = 0.0,
        method: str | None = None,
        user: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` matching calls suffer ``kind``."""
        armed = _Armed(FaultKind(kind), times, delay, method, user and user.lower(), retry_after)
        with self._lock:
            self._armed.append(armed)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, method: str, user: str) -> Fault | None:
        """The fault this call suffers, if one is armed for it."""
        with self._lock:
            armed = next((a for a in self._armed if a.matches(method, user)), None)
            if armed is None:
                return None
            armed.remaining -= 1
            if armed.remaining <= 0:
                self._armed.remove(armed)
            self.served += 1
        if armed.kind is FaultKind.LATENCY:
            return Fault(armed.delay, None)
        code, message, reason, domain = _ERRORS[armed.kind]
        headers = {"Retry-After": str(armed.retry_after)} if armed.retry_after is not None else {}
        return Fault(armed.delay, GmailError(code, message, reason, domain=domain, headers=headers))
