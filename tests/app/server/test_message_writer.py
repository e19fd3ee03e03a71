"""The server registers its mail-action writer and content fetcher while it runs, and removes
them afterwards."""

from __future__ import annotations

from app.events import InProcessBus
from app.server.message_writer import message_writer
from app.services.message_actions import register_message_writer
from app.services.message_content import register_content_fetcher
from app.settings import Settings
from sync.actions import AdapterWriter
from sync.content import AdapterFetcher


async def test_the_writer_and_fetcher_are_registered_while_the_server_runs(db: Settings) -> None:
    previous_writer = register_message_writer(None)
    previous_fetcher = register_content_fetcher(None)
    try:
        async with message_writer(db, InProcessBus()):
            writer = register_message_writer(None)
            fetcher = register_content_fetcher(None)
            assert isinstance(writer, AdapterWriter)
            assert isinstance(fetcher, AdapterFetcher)
            register_message_writer(writer)
            register_content_fetcher(fetcher)
        assert register_message_writer(None) is None
        assert register_content_fetcher(None) is None
    finally:
        register_message_writer(previous_writer)
        register_content_fetcher(previous_fetcher)
