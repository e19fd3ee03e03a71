"""Database connection and migrations (Tortoise ORM on SQLite or PostgreSQL).

One URL decides the backend: the embedded default is a SQLite file in the data directory, a
``postgres://`` URL switches to PostgreSQL through asyncpg. Schema changes go through Tortoise's
own migrations in ``app/migrations``; ``inbox-api migrate`` applies them, and the embedded
default applies them on start-up.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate as run_migrations

from app.settings import Settings

MODELS_MODULE = "app.models"
MIGRATIONS_MODULE = "app.migrations"


def _normalised_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgres://" + url.removeprefix("postgresql://")
    return url


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """The Tortoise configuration for these settings."""
    return {
        "connections": {"default": _normalised_url(settings.effective_database_url)},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(settings: Settings) -> None:
    """Apply every pending migration; quiet, idempotent."""
    if not settings.is_postgres:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The migration API prints its plan; operators see progress through `inbox-api migrate`.
    with contextlib.redirect_stdout(io.StringIO()):
        await run_migrations(config=tortoise_config(settings))
    await Tortoise.close_connections()


async def open_database(settings: Settings, *, apply_migrations: bool) -> None:
    """Connect Tortoise for this process, migrating first when asked."""
    if apply_migrations:
        await migrate(settings)
    # Global fallback: request tasks are not children of the task that ran start-up.
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def database_reachable() -> bool:
    """True when a trivial query succeeds (``/readyz``)."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        return False
    return True
