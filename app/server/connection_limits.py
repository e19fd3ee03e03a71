"""The open WebSocket connections of this process, by token and owner.

Three jobs: a cap on the connections one token holds at once (``admit`` refuses past it);
closing every socket of a revoked token or a terminated owner (``close_token``,
``close_owner``), which the revocation watcher calls for events from any process; and the
keep-alive (``keep_alive``): one task pings every connection once per interval, spread evenly
over it, rather than a task and a timer per connection (memory, and no burst of pings).

A connection is ``opened`` when its socket is accepted (no principal yet: it does not count),
``admit``-ted when ``connection_init`` authenticates it, and ``released`` when it ends. Every
step is synchronous, so the cap holds under concurrent handshakes. The registry holds the
principal and a way to close, never the raw token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from app.auth.principal import Principal

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY_CONNECTIONS = 4429


class Connection(Protocol):
    """One open connection, as the registry sees it."""

    async def close_connection(self, code: int, reason: str) -> None: ...

    async def keep_alive(self) -> None: ...


class TooManyConnections(Exception):
    """The token already holds as many open connections as it may."""


@dataclass(slots=True)
class _Entry:
    connection: Connection
    principal: Principal | None = None


class ConnectionRegistry:
    """Open connections of this process, counted per token, closable per token or owner."""

    def __init__(self, *, max_per_token: int) -> None:
        self.max_per_token = max_per_token
        self._entries: dict[int, _Entry] = {}
        self._by_token: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def open(self, key: int, connection: Connection) -> None:
        self._entries[key] = _Entry(connection)

    def admit(self, key: int, principal: Principal) -> None:
        """Count the connection under its token; ``TooManyConnections`` past the cap."""
        entry = self._entries[key]
        seats = self._by_token.setdefault(principal.token_id, set())
        if key not in seats and len(seats) >= self.max_per_token:
            raise TooManyConnections(principal.token_id)
        seats.add(key)
        entry.principal = principal

    def release(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        if entry is None or entry.principal is None:
            return
        seats = self._by_token.get(entry.principal.token_id)
        if seats is not None:
            seats.discard(key)
            if not seats:
                del self._by_token[entry.principal.token_id]

    def connections_of_token(self, token_id: int) -> int:
        return len(self._by_token.get(token_id, ()))

    async def close_token(self, token_id: int, reason: str) -> int:
        """Close every connection of the token; returns how many."""
        keys = list(self._by_token.get(token_id, ()))
        return await self._close(keys, reason)

    async def close_owner(self, owner_id: int, reason: str) -> int:
        """Close every connection of the owner's tokens; returns how many."""
        keys = [
            key
            for key, entry in self._entries.items()
            if entry.principal is not None and entry.principal.owner_id == owner_id
        ]
        return await self._close(keys, reason)

    async def keep_alive(self, interval: float) -> None:
        """Run until cancelled: every admitted connection's ``keep_alive()`` once per interval."""
        while True:
            keys = [key for key, entry in self._entries.items() if entry.principal is not None]
            pause = interval / max(len(keys), 1)
            if not keys:
                await asyncio.sleep(interval)
            for key in keys:
                await asyncio.sleep(pause)
                entry = self._entries.get(key)
                if entry is None:
                    continue
                try:
                    await entry.connection.keep_alive()
                except Exception as error:  # one broken socket must not stop the others' pings
                    logger.warning("keep-alive failed (%s)", type(error).__name__)

    async def _close(self, keys: list[int], reason: str) -> int:
        connections = [self._entries[key].connection for key in keys if key in self._entries]
        results = await asyncio.gather(
            *(c.close_connection(CLOSE_FORBIDDEN, reason) for c in connections),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                logger.warning("closing a connection failed (%s)", type(result).__name__)
        return len(connections)
