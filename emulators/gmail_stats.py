"""What the Gmail emulator served: calls per method, statuses, quota units per user.

Benchmarks and tests read it (``GoogleEmulator.stats()`` or ``GET /_emulator/stats``) to check
that a client, say, fetched each message once or stayed within quota.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class GmailStats:
    """Counters shared by the server thread and the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._statuses: Counter[tuple[str, int]] = Counter()
        self._units: Counter[str] = Counter()

    def record(self, method: str, user: str, status: int, units: int) -> None:
        with self._lock:
            self._calls[method] += 1
            self._statuses[(method, status)] += 1
            if user:
                self._units[user] += units

    def calls(self, method: str) -> int:
        with self._lock:
            return self._calls[method]

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: ``{"requests": {method: n}, "statuses": {method: {status: n}},
        "units": {user: total units charged}, "total_requests": n}``."""
        with self._lock:
            statuses: dict[str, dict[str, int]] = {}
            for (method, status), count in sorted(self._statuses.items()):
                statuses.setdefault(method, {})[str(status)] = count
            return {
                "requests": dict(sorted(self._calls.items())),
                "statuses": statuses,
                "units": dict(sorted(self._units.items())),
                "total_requests": sum(self._calls.values()),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._statuses.clear()
            self._units.clear()
