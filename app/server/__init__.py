"""The Starlette application: /graphql (HTTP + WebSocket), GraphiQL, health checks.

Wiring only: the schema comes from ``resolvers``, the use cases from ``app.services``. The
embedded default (SQLite) migrates its database on start-up; with PostgreSQL, operators run
``inbox-api migrate`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from app.auth.authenticator import TokenAuthenticator
from app.db import close_database, database_reachable, open_database
from app.events import EventBus, InProcessBus
from app.events.postgres import PostgresBus
from app.graphiql import GRAPHIQL_MOUNT_PATH, GRAPHIQL_STATIC_DIR
from app.server.attachments import attachment_download
from app.server.connection_limits import ConnectionRegistry
from app.server.direct_reads import DirectReads
from app.server.exports import export_download
from app.server.graphql_view import InboxGraphQL
from app.server.http_errors import internal_error_handler
from app.server.message_writer import message_writer
from app.server.metrics import ServerMetrics
from app.server.middleware import RequestGuard
from app.server.oauth_callback import oauth_routes
from app.server.push import push_routes
from app.server.revocations import forget_revoked_tokens
from app.services.credentials import start_vault
from app.services.usage_log import UsageLogWriter
from app.settings import Settings
from resolvers.context import Services
from resolvers.schema import build_schema
from resolvers.usage import UsageLogging
from sync.sessions import AdapterFactory
from sync.worker_loop import run_worker

logger = logging.getLogger("inbox_api.server")


async def healthz(request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The process can serve: its database answers."""
    if await database_reachable():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unreachable"}, status_code=503)


@asynccontextmanager
async def embedded_sync_worker(settings: Settings, bus: EventBus) -> AsyncIterator[None]:
    """The sync worker loop inside this process when the settings ask for it (the SQLite
    default: one process does everything); with PostgreSQL, ``inbox-api worker`` processes."""
    if not settings.runs_embedded_worker:
        yield
        return
    adapters = AdapterFactory(settings, bus)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, adapters.open_adapter, stop_event=stop, events=bus),
        name="sync-worker",
    )
    try:
        yield
    finally:
        stop.set()  # runs in progress finish their batch, or are cancelled after a grace time
        await worker
        await adapters.aclose()


def create_app(settings: Settings) -> RequestGuard:
    """Build the ASGI application for these settings."""
    usage_writer = UsageLogWriter()
    bus: InProcessBus | PostgresBus = (
        PostgresBus(settings.effective_database_url) if settings.is_postgres else InProcessBus()
    )
    services = Services(settings=settings, authenticator=TokenAuthenticator(), events=bus)
    metrics = ServerMetrics(settings)
    metrics.count_execution_paths(services.execution_paths.counts)
    schema = build_schema(
        settings, extra_extensions=[lambda: UsageLogging(usage_writer), metrics.extension]
    )
    connections = ConnectionRegistry(max_per_token=settings.max_connections_per_token)
    graphql = InboxGraphQL(
        schema,
        services,
        connections=connections,
        allowed_origins=settings.allowed_origins,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        direct=DirectReads(settings, schema, usage_writer, metrics),
    )

    @asynccontextmanager
    async def background() -> AsyncIterator[None]:
        """What runs beside the requests, on an open database: the event bus, the usage log
        writer, the revocation watcher, WebSocket keep-alive pings and the change-log tail of
        subscriptions."""
        if isinstance(bus, PostgresBus):
            await bus.start()
        usage_writer.start()
        watchers = [
            asyncio.create_task(
                forget_revoked_tokens(bus, services.authenticator, connections),
                name="forget-revoked-tokens",
            ),
            asyncio.create_task(
                connections.keep_alive(settings.websocket_ping_seconds), name="websocket-pings"
            ),
        ]
        try:
            async with embedded_sync_worker(settings, bus), message_writer(settings, bus):
                yield
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await services.changes.stop()
            await usage_writer.stop()
            if isinstance(bus, PostgresBus):
                await bus.stop()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await open_database(settings, apply_migrations=not settings.is_postgres)
        await start_vault(settings)  # the key ring, checked against the sealed rows, or no start
        try:
            async with background():
                # Objects alive after start-up never need collecting: freezing them shortens
                # the full collections that otherwise cause latency spikes.
                gc.collect()
                gc.freeze()
                logger.info("Inbox API ready")
                yield
        finally:
            await close_database()

    app = Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/attachments/{attachment_id}", attachment_download(services)),
            Route("/exports/{archive_id}", export_download(services)),
            metrics.route(),
            *oauth_routes(),
            *push_routes(),
            Mount(GRAPHIQL_MOUNT_PATH, StaticFiles(directory=GRAPHIQL_STATIC_DIR)),
        ],
        lifespan=lifespan,
        exception_handlers={Exception: internal_error_handler},
    )
    app.state.services = services
    app.state.usage_writer = usage_writer
    app.state.connections = connections
    app.state.background = background
    return RequestGuard(app, max_body_bytes=settings.max_body_bytes)


def create_app_from_environment() -> RequestGuard:
    """The application configured from ``INBOX_API_*`` variables (``inbox-api serve``)."""
    return create_app(Settings())
