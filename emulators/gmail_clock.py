"""Time for the Google emulators, injectable so tests move it instead of sleeping.

A clock is any ``Callable[[], float]`` returning seconds since the epoch (``time.time`` is one).
Quota windows, token expiry, ``internalDate`` of new mail and watch expirations all read it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class ManualClock:
    """A clock that only moves when told to; safe to read from the server thread."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
