"""The worker's IDLE watchers (``sync.worker_loop.run_worker``) against a real Dovecot.

A worker syncing IMAP accounts watches each over IDLE on a connection of its own: mail
delivered over LMTP is in the cache within 2 seconds (the issue's deadline) although the poll
interval is an hour, for an account connected after the worker started too. Between runs an
account holds one connection (the IDLE one). A paused or deleted account loses its watch; a
resumed one gets it back. A wrong password ends in "needs re-authorisation" after at most two
refused logins (the sync's and the watch's), however long the worker runs. Of two PostgreSQL
workers syncing the same account only one watches it; when that one stops, the other takes the
watch over.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from app import clock
from app.models import Account, Message, SyncState
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId, AccountStatus
from emulators.corpus import make_message
from sync.idle_claims import AdvisoryClaims
from sync.idle_watchers import IdleWatchers
from sync.worker_loop import run_worker
from tests.imap.conftest import ImapAccounts, Mailbox
from tests.sync.harness import park_other_accounts

DELIVERY_DEADLINE_SECONDS = 2.0  # the issue: delivered mail reaches a client within 2 s
SETTLE_SECONDS = 15.0  # generous: connecting, the first sync, a reconcile round (5 s)


class Idles:
    """A running worker's ``on_idle``: one event per account, set at each IDLE confirmation."""

    def __init__(self) -> None:
        self.events: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.counts: defaultdict[int, int] = defaultdict(int)
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)

    def record(self, account_id: int) -> None:
        self.counts[account_id] += 1
        self.events[account_id].set()

    async def next(self, account_id: int) -> None:
        await asyncio.wait_for(self.events[account_id].wait(), SETTLE_SECONDS)
        self.events[account_id].clear()


@asynccontextmanager
async def worker(settings: Settings, accounts: ImapAccounts) -> AsyncIterator[Idles]:
    """``run_worker`` beside the test, with the test's adapters."""
    idles = Idles()
    idles.task = asyncio.create_task(
        run_worker(settings, accounts.factory, stop_event=idles.stop_event, on_idle=idles.record)
    )
    try:
        yield idles
    finally:
        await idles.stop()


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float) -> float:
    """Poll ``check`` until true; when it became true. The worker signals nothing here."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        await asyncio.sleep(0.02)
    return time.monotonic()


def hourly(db: Settings) -> Settings:
    return db.model_copy(update={"sync_interval_seconds": 3600})


async def synced_once(account: Account) -> bool:
    state = await SyncState.get_or_none(account_id=account.id)
    return state is not None and state.last_success_at is not None


async def connections(mailbox: Mailbox) -> int:
    return await asyncio.to_thread(mailbox.server.connections, mailbox.user)


async def deliver_and_time(mailbox: Mailbox, account: Account, seed: int) -> float:
    """Deliver one message over LMTP; seconds until the cache holds one message more."""
    before = await Message.filter(account_id=account.id).count()
    raw = make_message(random.Random(seed))
    await asyncio.to_thread(mailbox.server.deliver, mailbox.user, raw)
    delivered = time.monotonic()

    async def arrived() -> bool:
        return await Message.filter(account_id=account.id).count() > before

    return await until(arrived, "synced delivery", SETTLE_SECONDS) - delivered


async def test_delivered_mail_is_synced_through_idle_also_for_an_account_connected_later(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox, other_mailbox: Mailbox
) -> None:
    first = await accounts.account(mailbox)
    await park_other_accounts(first.id)
    await SyncState.filter(account_id=first.id).update(next_run_at=None)
    async with worker(hourly(db), accounts) as idles:
        await idles.next(first.id)
        await until(lambda: synced_once(first), "first sync", SETTLE_SECONDS)
        await until(lambda: _equals(connections(mailbox), 1), "IDLE alone", SETTLE_SECONDS)
        latency = await deliver_and_time(mailbox, first, seed=1)
        assert latency < DELIVERY_DEADLINE_SECONDS

        later = await accounts.account(other_mailbox)
        await request_sync_now(AccountId(later.id))  # what connectImap does
        await idles.next(later.id)
        await until(lambda: synced_once(later), "first sync", SETTLE_SECONDS)
        latency = await deliver_and_time(other_mailbox, later, seed=2)
        assert latency < DELIVERY_DEADLINE_SECONDS
        await until(lambda: _equals(connections(other_mailbox), 1), "IDLE alone", SETTLE_SECONDS)
        assert await connections(mailbox) == 1
    assert await Message.filter(account_id=first.id).count() == 1
    assert await Message.filter(account_id=later.id).count() == 1


async def test_paused_and_deleted_accounts_lose_their_watch_and_resumed_ones_get_it_back(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    account = await accounts.account(mailbox)
    await park_other_accounts(account.id)
    await SyncState.filter(account_id=account.id).update(next_run_at=None)
    async with worker(hourly(db), accounts) as idles:
        await idles.next(account.id)
        await Account.filter(id=account.id).update(status=AccountStatus.DISABLED)
        await until(lambda: _equals(connections(mailbox), 0), "watch stopped", SETTLE_SECONDS)

        await Account.filter(id=account.id).update(status=AccountStatus.ACTIVE)
        await request_sync_now(AccountId(account.id))  # what resuming an account does
        await idles.next(account.id)
        latency = await deliver_and_time(mailbox, account, seed=3)
        assert latency < DELIVERY_DEADLINE_SECONDS

        await account.delete()
        await until(lambda: _equals(connections(mailbox), 0), "watch stopped", SETTLE_SECONDS)


async def test_a_wrong_password_needs_reauthorisation_after_at_most_two_refused_logins(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    account = await accounts.account(mailbox, password="wrong")
    await park_other_accounts(account.id)
    await SyncState.filter(account_id=account.id).update(next_run_at=None)
    async with worker(db.model_copy(update={"sync_interval_seconds": 1}), accounts) as idles:

        async def needs_reauth() -> bool:
            await account.refresh_from_db()
            return account.status == AccountStatus.NEEDS_REAUTH

        await until(needs_reauth, "needs_reauth", SETTLE_SECONDS)
        await asyncio.sleep(6)  # longer than a reconcile round and several poll intervals
        assert idles.counts[account.id] == 0
    refused = [
        line
        for line in mailbox.server.log_text().splitlines()
        if f"user=<{mailbox.user}>" in line and "auth failed" in line
    ]
    assert 1 <= len(refused) <= 2, refused


@pytest.mark.postgres_only
async def test_of_two_workers_syncing_an_account_one_watches_it_until_it_stops(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    account = await accounts.account(mailbox)
    wake = asyncio.Event()
    first_idles, second_idles = Idles(), Idles()

    def watchers(idles: Idles) -> IdleWatchers:
        claims = AdvisoryClaims(db.effective_database_url)
        return IdleWatchers(
            accounts.factory, claims, wake_event=wake, reconcile_seconds=0.2, on_idle=idles.record
        )

    first, second = watchers(first_idles), watchers(second_idles)
    async with second.running(asyncio.Event()):
        async with first.running(asyncio.Event()):
            await (await first.open_adapter(account)).aclose()  # the first worker syncs it
            await first_idles.next(account.id)
            await (await second.open_adapter(account)).aclose()  # then the second one does
            await asyncio.sleep(1)  # five reconcile rounds: the second's claim is refused
            assert second_idles.counts[account.id] == 0
            assert await connections(mailbox) == 1
        # the first worker stopped: its advisory lock went with its database session
        await second_idles.next(account.id)
        assert second.watching() == {account.id}
        wake.clear()
        await asyncio.to_thread(
            mailbox.server.deliver, mailbox.user, make_message(random.Random(5))
        )
        await asyncio.wait_for(wake.wait(), DELIVERY_DEADLINE_SECONDS)
        state = await SyncState.get(account_id=account.id)
        assert state.next_run_at is not None
        assert state.next_run_at <= clock.now()  # due at once


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
