"""Raw SQL for the read path: placeholders per dialect, plain rows, column values decoded.

Hot read paths skip model objects (TARGETS.md: ~43% slower) and run SQL on the Tortoise
connection. ``Statement`` numbers placeholders for the dialect as fragments are added, so
conditions compose without string surgery. Values always travel as parameters, never inside
the SQL text. This module knows no GraphQL type and never decides who may see a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

Row = Sequence[Any]


def connection() -> BaseDBAsyncClient:
    client: BaseDBAsyncClient = connections.get("default")
    return client


def dialect() -> str:
    """``sqlite`` or ``postgres``."""
    return str(connection().capabilities.dialect)


class Statement:
    """Collects parameters and hands out the placeholder for each, in order."""

    __slots__ = ("params", "postgres")

    def __init__(self, dialect_name: str) -> None:
        self.postgres = dialect_name == "postgres"
        self.params: list[Any] = []

    def __call__(self, value: Any) -> str:
        """Add ``value`` as a parameter; return its placeholder."""
        if isinstance(value, datetime) and not self.postgres:
            value = sqlite_datetime(value)
        self.params.append(value)
        return f"${len(self.params)}" if self.postgres else "?"

    def each(self, values: Sequence[Any]) -> str:
        """Placeholders for an ``IN (...)`` list (never empty: callers check first)."""
        return ", ".join(self(value) for value in values)

    async def rows(self, sql: str) -> list[Row]:
        _, rows = await connection().execute_query(sql, self.params)
        # sqlite3.Row and asyncpg.Record both index by position; Tortoise types them as dicts.
        return cast(list[Row], rows)


def sqlite_datetime(value: datetime) -> str:
    """The text Tortoise stores for a datetime on SQLite (UTC, ``isoformat(" ")``), so that
    comparisons on the column are comparisons of instants."""
    return value.astimezone(UTC).isoformat(" ")


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def as_optional_datetime(value: Any) -> datetime | None:
    return None if value is None else as_datetime(value)


def as_json(value: Any) -> Any:
    """A JSON column: text on SQLite (and on asyncpg without a codec), decoded already else."""
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value
