"""Gmail's per-user quota: documented unit costs over a sliding one-minute window.

Google charges every call, inner calls of a batch included, in "quota units" per user per minute
(currently 15,000 by default, configurable here). Over the limit a call answers 403
``userRateLimitExceeded`` in the ``usageLimits`` domain, with Google's "Retry after <time>".
Rejected calls cost nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime

from emulators.gmail_clock import Clock
from emulators.gmail_errors import GmailError

DEFAULT_UNITS_PER_MINUTE = 15_000
WINDOW_SECONDS = 60.0

# From the Gmail API "Usage limits" page, per method.
UNIT_COSTS: dict[str, int] = {
    "drafts.create": 10,
    "drafts.delete": 10,
    "drafts.get": 5,
    "drafts.list": 5,
    "drafts.send": 100,
    "drafts.update": 15,
    "getProfile": 1,
    "history.list": 2,
    "labels.create": 5,
    "labels.get": 1,
    "labels.list": 1,
    "messages.attachments.get": 5,
    "messages.batchDelete": 50,
    "messages.batchModify": 50,
    "messages.delete": 10,
    "messages.get": 5,
    "messages.list": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.trash": 5,
    "messages.untrash": 5,
    "stop": 50,
    "threads.get": 10,
    "threads.list": 10,
    "watch": 100,
}


class QuotaMeter:
    """Units charged per user in the last minute, by the injected clock."""

    def __init__(self, clock: Clock, units_per_minute: int = DEFAULT_UNITS_PER_MINUTE) -> None:
        self._clock = clock
        self.units_per_minute = units_per_minute
        self._lock = threading.Lock()
        self._charges: dict[str, deque[tuple[float, int]]] = {}

    def charge(self, user: str, method: str) -> int:
        """Charge ``method``'s cost to ``user``, or raise Google's 403 if it would exceed quota."""
        cost = UNIT_COSTS[method]
        now = self._clock()
        with self._lock:
            charges = self._window(user, now)
            used = sum(units for _, units in charges)
            if used + cost > self.units_per_minute:
                # The earliest moment enough units leave the window, as Google words it.
                freed, retry_at = used + cost - self.units_per_minute, now
                for when, units in charges:
                    freed -= units
                    retry_at = when + WINDOW_SECONDS
                    if freed <= 0:
                        break
                stamp = datetime.fromtimestamp(retry_at, UTC).isoformat(timespec="milliseconds")
                raise GmailError(
                    403,
                    f"User-rate limit exceeded.  Retry after {stamp.replace('+00:00', 'Z')}",
                    "userRateLimitExceeded",
                    domain="usageLimits",
                )
            charges.append((now, cost))
            return cost

    def usage(self) -> dict[str, int]:
        """Units each user spent in the current window."""
        now = self._clock()
        with self._lock:
            users = list(self._charges)
            return {user: sum(u for _, u in self._window(user, now)) for user in users}

    def _window(self, user: str, now: float) -> deque[tuple[float, int]]:
        charges = self._charges.setdefault(user, deque())
        while charges and charges[0][0] <= now - WINDOW_SECONDS:
            charges.popleft()
        return charges
