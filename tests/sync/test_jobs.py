"""sync.jobs: which accounts are due, leases and their takeover, the worker loop; sync now."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from app import clock
from app.models import Owner, SyncState
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId, AccountStatus, SyncPhase
from sync import jobs
from sync.jobs import (
    ensure_sync_states,
    lease_due_accounts,
    release_lease,
    renew_leases,
    run_jobs,
)
from tests.factories import make_account, make_owner
from tests.sync.harness import park_other_accounts

NOW = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
LEASE = 60.0


@pytest.fixture(autouse=True)
def _frozen_clock() -> None:
    clock.freeze(NOW)


async def accounts_with_states(*states: dict[str, Any], **account_fields: Any) -> list[int]:
    """New accounts with these SyncStates (the other tests' accounts are not due)."""
    ids = await new_accounts(*states, **account_fields)
    await park_other_accounts(*ids)
    return ids


async def new_accounts(*states: dict[str, Any], **account_fields: Any) -> list[int]:
    owner = await make_owner()
    ids = []
    for fields in states:
        account = await make_account(owner.owner, **account_fields)
        await SyncState.create(account_id=account.id, **fields)
        ids.append(account.id)
    return ids


async def test_only_due_active_unleased_accounts_are_leased(db: Settings) -> None:
    due, never_run, later, leased, lease_expired = await new_accounts(
        {"next_run_at": NOW - timedelta(seconds=1)},
        {"next_run_at": None},
        {"next_run_at": NOW + timedelta(seconds=1)},
        {"lease_owner": "w2", "lease_expires_at": NOW + timedelta(seconds=5)},
        {"lease_owner": "w2", "lease_expires_at": NOW - timedelta(seconds=5)},
    )
    # Neither a stopped account nor a terminated owner's account is ever due.
    (stopped,) = await new_accounts({"next_run_at": None}, status=AccountStatus.NEEDS_REAUTH)
    (terminated,) = await new_accounts({"next_run_at": None})
    await Owner.filter(accounts__id=terminated).update(terminated_at=NOW)
    await park_other_accounts(due, never_run, later, leased, lease_expired, stopped, terminated)

    taken = await lease_due_accounts("w1", limit=10, lease_seconds=LEASE)

    assert sorted(taken) == sorted([due, never_run, lease_expired])
    for account_id in taken:
        state = await SyncState.get(account_id=account_id)
        assert (state.lease_owner, state.lease_expires_at) == (
            "w1",
            NOW + timedelta(seconds=LEASE),
        )
    assert await lease_due_accounts("w3", limit=10, lease_seconds=LEASE) == []


async def test_a_dead_workers_accounts_are_taken_over_when_its_lease_expires(
    db: Settings,
) -> None:
    (account_id,) = await accounts_with_states({"next_run_at": None})
    assert await lease_due_accounts("dead", limit=4, lease_seconds=LEASE) == [account_id]

    clock.travel(timedelta(seconds=LEASE - 1))
    assert await lease_due_accounts("alive", limit=4, lease_seconds=LEASE) == []
    clock.travel(timedelta(seconds=1))
    assert await lease_due_accounts("alive", limit=4, lease_seconds=LEASE) == [account_id]


async def test_leases_are_renewed_and_released_only_by_their_holder(db: Settings) -> None:
    await accounts_with_states({"next_run_at": None}, {"next_run_at": None})
    (mine,) = await lease_due_accounts("w1", limit=1, lease_seconds=LEASE)
    (theirs,) = await lease_due_accounts("w2", limit=1, lease_seconds=LEASE)

    clock.travel(timedelta(seconds=30))
    assert await renew_leases("w1", [mine, theirs], lease_seconds=LEASE) == 1
    assert (await SyncState.get(account_id=mine)).lease_expires_at == NOW + timedelta(
        seconds=30 + LEASE
    )
    await release_lease("w1", theirs)  # not its lease: nothing happens
    assert (await SyncState.get(account_id=theirs)).lease_owner == "w2"
    await release_lease("w1", mine)
    state = await SyncState.get(account_id=mine)
    assert (state.lease_owner, state.lease_expires_at) == (None, None)


@pytest.mark.postgres_only
async def test_workers_skip_rows_another_worker_is_leasing(db: Settings) -> None:
    first, second = await accounts_with_states({"next_run_at": None}, {"next_run_at": None})
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold_first() -> None:
        async with in_transaction() as conn:
            await SyncState.filter(account_id=first).select_for_update().using_db(conn)
            locked.set()
            await release.wait()

    holder = asyncio.create_task(hold_first())
    await locked.wait()
    # No waiting on the locked row: the other worker takes what is free.
    taken = await asyncio.wait_for(lease_due_accounts("w2", limit=2, lease_seconds=LEASE), 5)
    release.set()
    await holder
    assert taken == [second]


async def test_missing_sync_states_are_created_due_at_once(db: Settings) -> None:
    owner = await make_owner()
    account = await make_account(owner.owner)
    stopped = await make_account(owner.owner, status=AccountStatus.DISABLED)
    assert await ensure_sync_states() >= 1
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.next_run_at) == (SyncPhase.PENDING, None)
    assert not await SyncState.exists(account_id=stopped.id)


async def test_sync_now_makes_an_account_due_but_keeps_a_backoff(db: Settings) -> None:
    owner = await make_owner()
    fresh = await make_account(owner.owner)
    assert await request_sync_now(AccountId(fresh.id)) == NOW  # the state is created

    waiting, backing_off = await accounts_with_states(
        {"next_run_at": NOW + timedelta(minutes=5), "phase": SyncPhase.INCREMENTAL},
        {"next_run_at": NOW + timedelta(minutes=5), "phase": SyncPhase.BACKOFF},
    )
    assert await request_sync_now(AccountId(waiting)) == NOW
    assert await request_sync_now(AccountId(backing_off)) == NOW + timedelta(minutes=5)
    assert await request_sync_now(AccountId(10**12)) is None


class Recorder:
    """An ``AccountRunner`` that counts runs and how many overlap."""

    def __init__(self, seconds: float = 0.05, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.runs: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, account_id: int, lease_owner: str) -> None:
        self.runs.append(account_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            state = await SyncState.get(account_id=account_id)
            assert state.lease_owner == lease_owner
            await asyncio.sleep(self.seconds)
            if self.fail:
                raise RuntimeError("crash")
            # What the engine does at the end of a run: the next run is later.
            await SyncState.filter(account_id=account_id).update(
                next_run_at=clock.now() + timedelta(minutes=1)
            )
        finally:
            self.in_flight -= 1


async def run_for(settings: Settings, runner: Recorder, seconds: float, **options: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_jobs(settings, runner, stop_event=stop, idle_seconds=0.02, **options)
    )
    await asyncio.sleep(seconds)
    stop.set()
    await loop


async def test_the_loop_runs_each_due_account_once_with_bounded_concurrency(
    db: Settings,
) -> None:
    ids = await accounts_with_states(*({"next_run_at": None} for _ in range(6)))
    runner = Recorder()
    await run_for(db, runner, 0.8, concurrency=2)
    assert sorted(runner.runs) == sorted(ids)
    assert runner.most_in_flight == 2
    assert not await SyncState.filter(account_id__in=ids, lease_owner__isnull=False).exists()


async def test_an_idle_loop_does_not_spin(db: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    await accounts_with_states({"next_run_at": NOW + timedelta(hours=1)})
    polls = 0
    lease = jobs.lease_due_accounts

    async def counted(*args: Any, **kwargs: Any) -> list[int]:
        nonlocal polls
        polls += 1
        return await lease(*args, **kwargs)

    monkeypatch.setattr(jobs, "lease_due_accounts", counted)
    runner = Recorder()
    stop = asyncio.Event()
    loop = asyncio.create_task(run_jobs(db, runner, stop_event=stop, idle_seconds=0.25))
    await asyncio.sleep(1.0)
    stop.set()
    await loop
    assert runner.runs == []
    assert polls <= 5  # one look per idle period


async def test_a_crashed_run_keeps_its_lease_until_it_expires(db: Settings) -> None:
    (account_id,) = await accounts_with_states({"next_run_at": None})
    runner = Recorder(fail=True)
    await run_for(db, runner, 0.4)
    assert runner.runs == [account_id]  # not retried while the lease stands
    state = await SyncState.get(account_id=account_id)
    assert state.lease_owner is not None


async def test_a_stop_cancels_slow_runs_after_the_grace_time_and_releases(
    db: Settings,
) -> None:
    (account_id,) = await accounts_with_states({"next_run_at": None})
    runner = Recorder(seconds=30)
    started = asyncio.get_running_loop().time()
    await run_for(db, runner, 0.2, grace_seconds=0.2)
    assert asyncio.get_running_loop().time() - started < 5
    assert runner.runs == [account_id]
    state = await SyncState.get(account_id=account_id)
    assert state.lease_owner is None


async def test_a_wake_event_ends_the_idle_sleep(db: Settings) -> None:
    runner = Recorder()
    stop, wake = asyncio.Event(), asyncio.Event()
    await park_other_accounts()
    loop = asyncio.create_task(
        run_jobs(db, runner, stop_event=stop, wake_event=wake, idle_seconds=30)
    )
    await asyncio.sleep(0.1)
    (account_id,) = await accounts_with_states({"next_run_at": None})
    wake.set()
    await asyncio.sleep(0.3)
    stop.set()
    await loop
    assert runner.runs == [account_id]


def test_worker_ids_differ_between_restarts_and_fit_the_column() -> None:
    first, second = jobs.new_worker_id(), jobs.new_worker_id()
    assert first != second
    assert len(first) <= 64  # SyncState.lease_owner
