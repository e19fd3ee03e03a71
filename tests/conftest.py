"""Shared fixtures: one database per test run (SQLite or PostgreSQL) and an API client.

The suite runs once per backend, each in its own process (Tortoise caches generated SQL per
dialect on the model classes). Tests isolate themselves by creating their own owners.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import clock
from app.db import close_database, open_database
from app.server import create_app
from app.settings import Settings
from tests import database

os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)  # production behaviour: https only


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
async def database_url(data_dir: Path) -> AsyncIterator[str]:
    if database.backend() == "postgres":
        url = await database.create_postgres_database()
        try:
            yield url
        finally:
            await database.drop_postgres_database(url)
    else:
        yield f"sqlite://{data_dir / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        data_dir=data_dir,
        embedded_worker=False,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """An open, migrated database for the whole run."""
    await open_database(settings, apply_migrations=True)
    try:
        yield settings
    finally:
        await close_database()


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.reset()


@pytest.fixture(scope="session")
def app(db: Settings) -> Any:
    """The ASGI application, without its lifespan: the test session owns the database."""
    return create_app(db)


GraphQLCall = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLCall:
    """``await gql(token, query, **variables)`` -> the JSON body (any HTTP status)."""

    async def call(token: str | None, query: str, **variables: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        body["_status"] = response.status_code
        return body

    return call


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


def assert_forbidden(body: dict[str, Any], scope: str) -> None:
    """The field was denied for ``scope`` and carried no data."""
    errors = body.get("errors") or []
    assert errors, body
    assert any(
        e.get("extensions", {}).get("code") == "FORBIDDEN"
        and e.get("extensions", {}).get("missingScope") == scope
        for e in errors
    ), errors


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """PostgreSQL-only tests run in the PostgreSQL pass; the SQLite pass deselects them openly."""
    if database.backend() == "postgres":
        return
    selected = [item for item in items if "postgres_only" not in item.keywords]
    deselected = [item for item in items if "postgres_only" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
