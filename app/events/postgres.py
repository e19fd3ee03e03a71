"""Events between processes over PostgreSQL LISTEN/NOTIFY.

``publish`` sends a NOTIFY whose payload is the event's type and ids (JSON, a few dozen bytes:
never content or secrets). Sent inside a transaction, it is delivered only after COMMIT. One
dedicated asyncpg connection per process LISTENs and fans events out to the local subscribers,
including events this process published itself. If that connection drops, it reconnects with
backoff; events sent meanwhile are lost, which every consumer tolerates: subscriptions resume
from the change log by cursor and the token cache expires by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, fields
from typing import Any

import asyncpg
import orjson

from app.events import AccountChanged, Event, InProcessBus, OwnerTerminated, TokenRevoked

logger = logging.getLogger(__name__)

CHANNEL = "inbox_api_events"
_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls for cls in (TokenRevoked, OwnerTerminated, AccountChanged)
}


def encode_event(event: Event) -> str:
    return orjson.dumps({"type": type(event).__name__, **asdict(event)}).decode()


def decode_event(payload: str) -> Event | None:
    """The event of a NOTIFY payload, or None for anything malformed or unknown."""
    try:
        data = orjson.loads(payload)
        cls = _TYPES[data.pop("type")]
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in names})
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


class PostgresBus:
    """LISTEN/NOTIFY fan-out between every process connected to one database."""

    def __init__(self, dsn: str, *, reconnect_delay: float = 1.0) -> None:
        self._dsn = dsn
        self._local = InProcessBus()
        self._reconnect_delay = reconnect_delay
        self._listener: asyncpg.Connection | None = None
        self._publisher: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._publish_lock = asyncio.Lock()
        self._listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="postgres-event-bus")
        await asyncio.wait_for(self._listening.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for connection in (self._listener, self._publisher):
            if connection is not None and not connection.is_closed():
                await connection.close()

    async def publish(self, event: Event) -> None:
        async with self._publish_lock:
            if self._publisher is None or self._publisher.is_closed():
                self._publisher = await asyncpg.connect(self._dsn)
            await self._publisher.execute("SELECT pg_notify($1, $2)", CHANNEL, encode_event(event))

    def subscribe(self) -> AbstractAsyncContextManager[asyncio.Queue[Event]]:
        return self._local.subscribe()

    @property
    def subscriber_count(self) -> int:
        return self._local.subscriber_count

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        event = decode_event(payload)
        if event is not None:
            asyncio.get_running_loop().create_task(self._local.publish(event))

    @staticmethod
    async def _until_closed(connection: asyncpg.Connection) -> None:
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _connection: closed.set())
        await closed.wait()

    async def _listen_forever(self) -> None:
        while True:
            try:
                self._listener = await asyncpg.connect(self._dsn)
                await self._listener.add_listener(CHANNEL, self._on_notify)
                self._listening.set()
                await self._until_closed(self._listener)
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("event bus connection lost (%s); reconnecting", type(error).__name__)
            await asyncio.sleep(self._reconnect_delay)
