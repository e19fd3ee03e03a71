"""The database: migrations create every table and are idempotent."""

from __future__ import annotations

from tortoise import connections

from app.db import database_reachable
from app.settings import Settings

EXPECTED_TABLES = {
    "owners",
    "api_tokens",
    "accounts",
    "credentials",
    "sync_states",
    "folders",
    "threads",
    "messages",
    "message_labels",
    "message_bodies",
    "attachments",
    "change_log",
    "usage_log",
}


async def _tables() -> set[str]:
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        rows = await connection.execute_query_dict(
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
        )
    else:
        rows = await connection.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    return {str(row["name"]) for row in rows}


async def test_every_table_exists(db: Settings) -> None:
    assert await _tables() >= EXPECTED_TABLES


async def test_database_reachable(db: Settings) -> None:
    assert await database_reachable()
