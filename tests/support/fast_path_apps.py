"""The same database behind two applications: graphql-core only (``fast_path`` off) and the
compiled read path (on), each with an in-process HTTP client, for the tests that compare them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.server import create_app
from app.settings import Settings
from resolvers.compiled.paths import ExecutionPaths


@dataclass
class Servers:
    """The same database behind graphql-core only (``off``) and the compiled path (``on``)."""

    off_app: Any
    on_app: Any
    off: httpx.AsyncClient
    on: httpx.AsyncClient

    @property
    def on_paths(self) -> ExecutionPaths:
        paths: ExecutionPaths = self.on_app.app.state.services.execution_paths
        return paths

    @property
    def off_paths(self) -> ExecutionPaths:
        paths: ExecutionPaths = self.off_app.app.state.services.execution_paths
        return paths


@asynccontextmanager
async def fast_path_servers(settings: Settings) -> AsyncIterator[Servers]:
    off_app = create_app(settings.model_copy(update={"fast_path": False}))
    on_app = create_app(settings.model_copy(update={"fast_path": True}))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=off_app), base_url="http://t") as off,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=on_app), base_url="http://t") as on,
    ):
        yield Servers(off_app, on_app, off, on)
