"""The server registers a mail-action writer while it runs, and removes it afterwards."""

from __future__ import annotations

from app.events import InProcessBus
from app.server.message_writer import message_writer
from app.services.message_actions import register_message_writer
from app.settings import Settings
from sync.actions import AdapterWriter


async def test_the_writer_is_registered_while_the_server_runs(db: Settings) -> None:
    previous = register_message_writer(None)
    try:
        async with message_writer(db, InProcessBus()):
            current = register_message_writer(None)
            assert isinstance(current, AdapterWriter)
            register_message_writer(current)
        assert register_message_writer(None) is None
    finally:
        register_message_writer(previous)
