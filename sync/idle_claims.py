"""Which worker watches an IMAP account over IDLE: at most one process per account.

A worker claims the accounts it syncs (``sync.idle_watchers``); a claim that another worker
holds fails, and the account stays with that worker. Two kinds:

- ``LocalClaims``: one process has every account it asks for (SQLite: one worker process).
- ``AdvisoryClaims``: a PostgreSQL session advisory lock per account on one dedicated
  connection per worker. Why a lock and not the sync lease: the lease lasts one sync run and is
  released at its end, while an IDLE watch lasts as long as the worker; a lock held by a session
  is released by PostgreSQL itself when that worker dies or its connection drops, so another
  worker takes the account over on its next sync of it (within one sync interval), without a
  table or a heartbeat. If the connection drops, every claim of this worker is void
  (``held`` empties) and its watches stop until they are claimed again.

Never blocks on a lock (``pg_try_advisory_lock``) and never touches the project's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Protocol

import asyncpg

logger = logging.getLogger("inbox_api.worker")

# The first key of the two-key advisory lock space: IMAP IDLE claims, apart from any other use.
LOCK_CLASS = 0x1D1E
_OBJECT_MASK = 0x7FFFFFFF  # advisory lock keys are int4


class WatchClaims(Protocol):
    """The accounts this worker may watch."""

    held: set[int]

    async def claim(self, account_ids: Collection[int]) -> set[int]:
        """Try to claim ``account_ids`` (without waiting); the ones this worker now holds."""
        ...

    async def release(self, account_ids: Collection[int]) -> None:
        """Give these accounts up."""
        ...

    async def aclose(self) -> None:
        """Give every account up."""
        ...


class LocalClaims:
    """Every claim succeeds: the only worker watches everything it syncs."""

    def __init__(self) -> None:
        self.held: set[int] = set()

    async def claim(self, account_ids: Collection[int]) -> set[int]:
        self.held.update(account_ids)
        return set(account_ids)

    async def release(self, account_ids: Collection[int]) -> None:
        self.held.difference_update(account_ids)

    async def aclose(self) -> None:
        self.held.clear()


class AdvisoryClaims:
    """Claims as PostgreSQL session advisory locks on a connection of their own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self.held: set[int] = set()

    async def claim(self, account_ids: Collection[int]) -> set[int]:
        connection = await self._connected()
        wanted = [i for i in account_ids if i not in self.held]
        if wanted:
            rows = await connection.fetch(
                "SELECT id FROM unnest($1::bigint[]) AS id"
                " WHERE pg_try_advisory_lock($2::int, (id & $3)::int)",
                wanted,
                LOCK_CLASS,
                _OBJECT_MASK,
            )
            self.held.update(int(row["id"]) for row in rows)
        return self.held.intersection(account_ids)

    async def release(self, account_ids: Collection[int]) -> None:
        mine = [i for i in account_ids if i in self.held]
        self.held.difference_update(mine)
        if mine and self._connection is not None and not self._connection.is_closed():
            await self._connection.execute(
                "SELECT pg_advisory_unlock($2::int, (id & $3)::int) FROM unnest($1::bigint[]) id",
                mine,
                LOCK_CLASS,
                _OBJECT_MASK,
            )

    async def aclose(self) -> None:
        self.held.clear()
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()  # the session's locks go with it
        self._connection = None

    async def _connected(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            if self.held:
                logger.warning("IDLE claims: the lock connection dropped; claiming again")
            self.held.clear()  # a new session holds nothing
            self._connection = await asyncpg.connect(self._dsn)
        return self._connection
