"""The API usage log: one row per request, written off the hot path in batches.

Requests append a ``UsageRecord`` to an in-memory buffer (no I/O); a background task writes the
buffer every ``flush_interval`` seconds with one bulk insert, and stamps ``last_used_at`` of the
tokens seen. Rows hold the operation's name and type, status and error codes, never variables,
queries or secrets. The purge job deletes rows past the retention (90 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import clock
from app.models import ApiToken, UsageLogEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    owner_id: int
    token_id: int | None
    at: datetime
    operation_name: str | None
    operation_type: str
    status: str
    error_codes: tuple[str, ...]
    duration_ms: float


class UsageLogWriter:
    """Buffers usage records and writes them in the background."""

    def __init__(self, *, flush_interval: float = 0.5, max_buffer: int = 50_000) -> None:
        self._buffer: list[UsageRecord] = []
        self._used_tokens: dict[int, datetime] = {}
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: UsageRecord) -> None:
        if len(self._buffer) >= self._max_buffer:
            # Never let logging take the server down; the loss is logged (without content).
            logger.warning("usage log buffer full; dropping one record")
            return
        self._buffer.append(record)
        if record.token_id is not None:
            self._used_tokens[record.token_id] = record.at

    async def flush(self) -> None:
        async with self._lock:
            batch, self._buffer = self._buffer, []
            used, self._used_tokens = self._used_tokens, {}
            if batch:
                await UsageLogEntry.bulk_create(
                    [
                        UsageLogEntry(
                            owner_id=r.owner_id,
                            token_id=r.token_id,
                            at=r.at,
                            operation_name=r.operation_name,
                            operation_type=r.operation_type,
                            status=r.status,
                            error_codes=list(r.error_codes),
                            duration_ms=r.duration_ms,
                        )
                        for r in batch
                    ]
                )
            for token_id, at in used.items():
                await ApiToken.filter(id=token_id).update(last_used_at=at)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush()
            except Exception as exc:
                logger.error("usage log flush failed (%s)", type(exc).__name__)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="usage-log-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


async def purge_expired_usage_logs(retention_days: int) -> int:
    """Delete usage rows older than the retention; returns how many went."""
    cutoff = clock.now() - timedelta(days=retention_days)
    return await UsageLogEntry.filter(at__lt=cutoff).delete()
