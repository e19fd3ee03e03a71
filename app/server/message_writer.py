"""The API process's writer of mail actions: ``sync.actions.AdapterWriter`` over its own adapters.

Mutations that act on mail (``resolvers.message_actions``) reach providers through the writer
registered in ``app.services.message_actions``. The server registers one for as long as it runs,
with an ``AdapterFactory`` of its own (pooled HTTP clients per provider), whether or not it also
runs the embedded sync worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.events import EventBus
from app.services.message_actions import register_message_writer
from app.settings import Settings
from sync.actions import AdapterWriter
from sync.sessions import AdapterFactory


@asynccontextmanager
async def message_writer(settings: Settings, bus: EventBus) -> AsyncIterator[None]:
    """Register the writer while the server runs; close its HTTP clients afterwards."""
    adapters = AdapterFactory(settings, bus)
    previous = register_message_writer(AdapterWriter(adapters.open_adapter, bus))
    try:
        yield
    finally:
        register_message_writer(previous)
        await adapters.aclose()
