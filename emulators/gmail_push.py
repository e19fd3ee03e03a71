"""Gmail push notifications, delivered the way a Cloud Pub/Sub push subscription delivers them.

``users.watch`` names a Pub/Sub topic; a test maps that topic to its webhook with
``subscribe(topic, url)``. For each change a watch covers, the mailbox's ``{"emailAddress",
"historyId"}`` is POSTed in Pub/Sub's push envelope::

    {"message": {"data": base64({"emailAddress": ..., "historyId": ...}),
                 "messageId": "17", "publishTime": "2024-...Z", "attributes": {}},
     "subscription": "projects/emulator/subscriptions/<topic>"}

The awkward parts are kept (PROVIDERS.md G10): at most one notification per user per
``min_interval`` seconds, with the changes in between folded into the latest historyId, and
notifications get lost: ``drop_next(n)`` loses the next n, ``drop_rate`` a random share, and a
POST that fails is not retried. Clients must keep a fallback poll.

Delivery runs on a daemon thread and paces itself with real time, not the injectable clock (a
``ManualClock`` would hold notifications back for ever). A topic nobody subscribed loses its
notifications, as Pub/Sub does.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import threading
import time
from datetime import UTC, datetime

import httpx

SUBSCRIPTION_PREFIX = "projects/emulator/subscriptions/"


class PushChannel:
    """Watch notifications waiting to go out, and the thread that sends them."""

    def __init__(self, *, min_interval: float = 1.0, drop_rate: float = 0.0, seed: int = 0):
        self.min_interval = min_interval
        self.drop_rate = drop_rate
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._ready = threading.Condition()
        self._endpoints: dict[str, str] = {}
        self._pending: dict[tuple[str, str], int] = {}  # (email, topic) -> latest history id
        self._last_sent: dict[str, float] = {}
        self._drops = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.counts = {"sent": 0, "dropped": 0, "failed": 0}

    def subscribe(self, topic_name: str, push_endpoint: str) -> None:
        """Deliver notifications for ``topic_name`` to ``push_endpoint``."""
        with self._ready:
            self._endpoints[topic_name] = push_endpoint

    def drop_next(self, count: int = 1) -> None:
        with self._ready:
            self._drops += count

    def notify(self, email: str, topic_name: str, history_id: int) -> None:
        """A change a watch covers: queue (or fold into) the user's next notification."""
        with self._ready:
            if topic_name not in self._endpoints or self._closed:
                return
            key = (email, topic_name)
            self._pending[key] = max(history_id, self._pending.get(key, 0))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="gmail-push")
                self._thread.start()
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while (due := self._next_due()) is not None:
                url, body = due
                try:
                    answer = client.post(url, json=body)
                    outcome = "sent" if answer.is_success else "failed"
                except httpx.HTTPError:
                    outcome = "failed"
                with self._ready:
                    self.counts[outcome] += 1

    def _next_due(self) -> tuple[str, dict[str, object]] | None:
        """Wait for a notification whose user may be notified again; None once closed."""
        with self._ready:
            while not self._closed:
                now = time.monotonic()
                wait = None
                for (email, topic), history_id in list(self._pending.items()):
                    ready_at = self._last_sent.get(email, -self.min_interval) + self.min_interval
                    if ready_at > now:
                        wait = min(wait or ready_at - now, ready_at - now)
                        continue
                    del self._pending[(email, topic)]
                    self._last_sent[email] = now
                    if self._drops or self._rng.random() < self.drop_rate:
                        self._drops = max(0, self._drops - 1)
                        self.counts["dropped"] += 1
                        continue
                    return self._endpoints[topic], self._envelope(email, topic, history_id)
                self._ready.wait(timeout=wait)
            return None

    def _envelope(self, email: str, topic: str, history_id: int) -> dict[str, object]:
        data = json.dumps({"emailAddress": email, "historyId": history_id}).encode()
        published = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "message": {
                "data": base64.b64encode(data).decode(),
                "messageId": str(next(self._ids)),
                "publishTime": published,
                "attributes": {},
            },
            "subscription": SUBSCRIPTION_PREFIX + topic.rpartition("/")[2],
        }
