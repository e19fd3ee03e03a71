"""Test databases: a fresh SQLite file or a fresh PostgreSQL database per test run.

``INBOX_API_TEST_BACKEND`` picks ``sqlite`` (default) or ``postgres``. PostgreSQL comes from
``INBOX_API_TEST_DATABASE_URL`` (a server URL; a unique database is created on it and dropped
after the run), else the local server of ENVIRONMENT.md at 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def backend() -> str:
    value = os.environ.get("INBOX_API_TEST_BACKEND", "sqlite")
    if value not in ("sqlite", "postgres"):
        raise RuntimeError(f"INBOX_API_TEST_BACKEND must be sqlite or postgres, not {value!r}")
    return value


def server_url() -> str:
    return os.environ.get("INBOX_API_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


async def create_postgres_database() -> str:
    """Create a uniquely named database and return its URL."""
    name = f"inbox_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(server_url(), name)


async def drop_postgres_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
