"""The API process's access to providers: the mail-action writer and the content fetcher.

Mutations that act on mail (``resolvers.message_actions``) reach providers through the writer
registered in ``app.services.message_actions`` (``sync.actions.AdapterWriter``); bodies the
cache lacks and attachment bytes come through the fetcher registered in
``app.services.message_content`` (``sync.content.AdapterFetcher``). The server registers both
for as long as it runs, over one ``AdapterFactory`` of its own (pooled HTTP clients per
provider), whether or not it also runs the embedded sync worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.events import EventBus
from app.services.message_actions import register_message_writer
from app.services.message_content import register_content_fetcher
from app.settings import Settings
from sync.actions import AdapterWriter
from sync.content import AdapterFetcher
from sync.sessions import AdapterFactory


@asynccontextmanager
async def message_writer(settings: Settings, bus: EventBus) -> AsyncIterator[None]:
    """Register the writer and the fetcher while the server runs; close their HTTP clients
    afterwards."""
    adapters = AdapterFactory(settings, bus)
    previous_writer = register_message_writer(AdapterWriter(adapters.open_adapter, bus))
    previous_fetcher = register_content_fetcher(AdapterFetcher(adapters.open_adapter))
    try:
        yield
    finally:
        register_content_fetcher(previous_fetcher)
        register_message_writer(previous_writer)
        await adapters.aclose()
