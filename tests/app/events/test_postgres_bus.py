"""Events cross processes over LISTEN/NOTIFY; revocation clears every process's token cache."""

from __future__ import annotations

import asyncio

import pytest

from app.auth.authenticator import TokenAuthenticator
from app.events import AccountChanged, TokenRevoked
from app.events.postgres import PostgresBus, decode_event, encode_event
from app.server.revocations import forget_revoked_tokens
from app.services.tokens import revoke_token
from app.settings import Settings
from app.types import OwnerId
from tests.factories import make_owner

pytestmark = pytest.mark.postgres_only


def test_payload_round_trip_and_garbage() -> None:
    event = AccountChanged(owner_id=1, account_id=2, change_id=3)
    assert decode_event(encode_event(event)) == event
    assert len(encode_event(event)) < 100
    for garbage in ("", "{}", '{"type": "Nope"}', '{"type": "TokenRevoked"}', "[1]"):
        assert decode_event(garbage) is None


async def test_an_event_reaches_another_bus(db: Settings) -> None:
    first, second = PostgresBus(db.effective_database_url), PostgresBus(db.effective_database_url)
    await first.start()
    await second.start()
    try:
        async with second.subscribe() as queue:
            await first.publish(TokenRevoked(owner_id=7, token_id=9))
            assert await asyncio.wait_for(queue.get(), 5) == TokenRevoked(owner_id=7, token_id=9)
    finally:
        await first.stop()
        await second.stop()


async def test_revocation_in_one_process_clears_the_cache_of_another(db: Settings) -> None:
    made = await make_owner()
    here, there = PostgresBus(db.effective_database_url), PostgresBus(db.effective_database_url)
    await here.start()
    await there.start()
    local_auth, remote_auth = TokenAuthenticator(cache_ttl=3600), TokenAuthenticator(cache_ttl=3600)
    watcher = asyncio.create_task(forget_revoked_tokens(there, remote_auth))
    try:
        await asyncio.sleep(0.05)
        principal = await remote_auth.authenticate(made.token)
        assert principal is not None
        await revoke_token(
            OwnerId(made.owner.id), principal.token_id, authenticator=local_auth, events=here
        )
        for _ in range(100):
            if await remote_auth.authenticate(made.token) is None:
                break
            await asyncio.sleep(0.02)
        assert await remote_auth.authenticate(made.token) is None
    finally:
        watcher.cancel()
        await here.stop()
        await there.stop()
