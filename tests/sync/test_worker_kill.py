"""A worker process killed with SIGKILL in the middle of a full sync loses and duplicates nothing.

Three processes, as in production: the emulated Gmail, a worker (``app.worker.run_worker`` with
real Gmail adapters, ``python -m tests.sync.harness worker``) and this test, all on the test
database (the SQLite file or the PostgreSQL database of the run). The first worker is killed
once some pages are stored; the mailbox changes while no worker runs; a second worker waits for
the dead one's lease to expire, resumes the full sync from the stored page token (no new
``getProfile``: the same pass), and the cache ends equal to the mailbox.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from app.models import Account, Message, SyncState
from app.settings import Settings
from tests.factories import make_account, make_owner
from tests.sync.harness import (
    cache_snapshot,
    cache_truth,
    emulator_process,
    park_other_accounts,
    remote_mailbox_truth,
    worker_command,
)

ROOT = Path(__file__).resolve().parents[2]
USER = "killed-worker@example.com"
LEASE_SECONDS = 2


async def start_worker(settings: Settings, base_url: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "INBOX_API_DATABASE_URL": settings.effective_database_url,
        "INBOX_API_DATA_DIR": str(settings.data_dir),
        "INBOX_API_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    # Small pages: the kill lands between stored pages, in the middle of the full sync.
    command = worker_command(base_url, page_size=100)
    return await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)


async def wait_for(condition: Callable[[], Awaitable[bool]], *, seconds: float) -> None:
    # Another process changes the database: polling is the only way to see it.
    async with asyncio.timeout(seconds):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.02)


async def test_a_killed_worker_is_taken_over_without_loss_or_duplicates(db: Settings) -> None:
    with emulator_process(USER, messages=800, seed=21) as base_url:
        account = await make_account((await make_owner()).owner, address=USER)
        await park_other_accounts(account.id)
        await SyncState.filter(account_id=account.id).update(next_run_at=None)

        async def mid_full_sync() -> bool:
            state = await SyncState.get(account_id=account.id)
            stored = await Message.filter(account_id=account.id).count()
            return state.full_sync_page_token is not None and stored >= 200

        first = await start_worker(db, base_url)
        await wait_for(mid_full_sync, seconds=60)
        first.kill()
        await first.wait()

        at_kill = await SyncState.get(account_id=account.id)
        assert at_kill.cursor is None
        assert at_kill.lease_owner is not None  # the dead worker's lease still stands
        stored_at_kill = await Message.filter(account_id=account.id).count()
        assert 200 <= stored_at_kill < 800
        await change_mailbox(base_url, account)

        second = await start_worker(db, base_url)

        async def caught_up() -> bool:
            state = await SyncState.get(account_id=account.id)
            return state.last_success_at is not None

        await wait_for(caught_up, seconds=90)
        second.terminate()
        assert await second.wait() == 0  # SIGTERM: a graceful stop

        truth = await remote_mailbox_truth(base_url, USER)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(base_url + "/_emulator/stats")).json()

    snapshot = await cache_snapshot(account.id)
    assert cache_truth(snapshot) == truth
    assert await Message.filter(account_id=account.id).count() == len(truth)
    # Resumed, not restarted: one pass, pinned by a single getProfile.
    assert stats["requests"]["getProfile"] == 1
    state = await SyncState.get(account_id=account.id)
    assert (state.full_sync_page_token, state.lease_owner) == (None, None)


async def change_mailbox(base_url: str, account: Account) -> None:
    """While no worker runs: delete some synced mail, deliver new mail."""
    synced = await Message.filter(account_id=account.id).order_by("id").limit(20)
    async with httpx.AsyncClient(base_url=f"{base_url}/_emulator/users/{USER}") as control:
        for message in synced:
            (await control.delete(f"/messages/{message.provider_id}")).raise_for_status()
        delivered = await control.post("/corpus", json={"seed": 99, "count": 30})
        delivered.raise_for_status()
