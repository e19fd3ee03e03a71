"""app.services.change_tail: one follower per process, holes, overflow, replay then live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from app.events import AccountChanged, InProcessBus
from app.models import Account, ChangeLogEntry
from app.services.change_feed import (
    MESSAGE_KINDS,
    Change,
    FeedFilter,
    Position,
    last_change_id,
)
from app.services.change_tail import ChangeTail, Gap, Listener, follow_changes
from app.settings import Settings
from app.types import AccountId, ChangeKind, OwnerId
from tests import database
from tests.factories import make_account, make_owner


async def log(account: Account, **fields: object) -> ChangeLogEntry:
    return await ChangeLogEntry.create(
        account_id=account.id, kind=ChangeKind.MESSAGE_ADDED, message_id=1, **fields
    )


async def announce(bus: InProcessBus, row: ChangeLogEntry, account: Account) -> None:
    await bus.publish(AccountChanged(account.owner_id, account.id, row.id))


async def caught_up(tail: ChangeTail) -> None:
    """Until the tail stands at the end of the log (older tests' holes settled)."""
    end = await last_change_id()
    for _ in range(500):
        if tail.horizon >= end:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the tail stays at {tail.horizon}, the log ends at {end}")


async def offered(listener: Listener, count: int) -> list[int]:
    """Ids of the next ``count`` rows the listener gets (fails after 3 s)."""
    ids: list[int] = []
    async with asyncio.timeout(3):
        while len(ids) < count:
            await listener.wait()
            taken = listener.take()
            assert taken is not None
            ids += [change.id for change in taken]
    return ids


async def fix_sequence() -> None:
    """After explicit ids, PostgreSQL's sequence must move past them (SQLite's does itself)."""
    if database.backend() == "postgres":
        await connections.get("default").execute_query(
            "SELECT setval(pg_get_serial_sequence('change_log', 'id'), "
            "(SELECT MAX(id) FROM change_log))"
        )


@pytest.fixture
async def tail() -> AsyncIterator[tuple[ChangeTail, InProcessBus]]:
    bus = InProcessBus()
    follower = ChangeTail(bus, poll_interval=5, settle=0.5, listener_limit=3)
    try:
        yield follower, bus
    finally:
        await follower.stop()


def everything_of(account: Account) -> FeedFilter:
    return FeedFilter(OwnerId(account.owner_id), None, MESSAGE_KINDS)


async def test_rows_reach_only_the_listeners_that_admit_them(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made, stranger = await make_owner(), await make_owner()
    first, second = await make_account(made.owner), await make_account(made.owner)
    foreign = await make_account(stranger.owner)
    only_second = FeedFilter(
        OwnerId(made.owner.id), frozenset({AccountId(second.id)}), MESSAGE_KINDS
    )
    async with (
        follower.listen(everything_of(first)) as owner_wide,
        follower.listen(only_second) as narrow,
        follower.listen(everything_of(foreign)) as other_owner,
    ):
        rows = [await log(first), await log(foreign), await log(second)]
        await announce(bus, rows[-1], second)
        assert await offered(owner_wide, 2) == [rows[0].id, rows[2].id]
        assert await offered(narrow, 1) == [rows[2].id]
        assert await offered(other_owner, 1) == [rows[1].id]
    assert follower.listener_count == 0


async def test_without_an_event_the_poll_finds_new_rows(db: Settings) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    follower = ChangeTail(InProcessBus(), poll_interval=0.1, settle=0.3)
    try:
        async with follower.listen(everything_of(account)) as listener:
            row = await log(account)  # no AccountChanged: the event was lost
            assert await offered(listener, 1) == [row.id]
    finally:
        await follower.stop()


async def test_a_missing_id_holds_the_tail_until_its_row_appears(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    async with follower.listen(everything_of(account)) as listener:
        await caught_up(follower)
        end = await last_change_id()
        later = await log(account, id=end + 2)  # id end+1 is still "committing"
        await fix_sequence()
        await announce(bus, later, account)
        await asyncio.sleep(0.2)
        assert listener.take() == []
        assert follower.horizon == end

        earlier = await log(account, id=end + 1)
        await announce(bus, earlier, account)
        assert await offered(listener, 2) == [end + 1, end + 2]


async def test_a_missing_id_that_never_appears_is_skipped_once_settled(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    async with follower.listen(everything_of(account)) as listener:
        await caught_up(follower)
        end = await last_change_id()
        row = await log(account, id=end + 2)  # end+1 was rolled back
        await fix_sequence()
        await announce(bus, row, account)
        started = asyncio.get_running_loop().time()
        assert await offered(listener, 1) == [row.id]
        assert asyncio.get_running_loop().time() - started >= 0.4


@pytest.mark.postgres_only
async def test_a_row_committed_late_is_delivered_before_the_rows_after_it(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    async with follower.listen(everything_of(account)) as listener:
        await caught_up(follower)
        async with in_transaction() as slow:
            early = await ChangeLogEntry.create(
                account_id=account.id, kind=ChangeKind.MESSAGE_ADDED, using_db=slow
            )
            fast = await log(account)  # another connection: commits first, with a higher id
            await announce(bus, fast, account)
            await asyncio.sleep(0.2)
            assert listener.take() == []
        await announce(bus, early, account)
        assert await offered(listener, 2) == [early.id, fast.id]


async def test_follow_replays_after_the_cursor_then_goes_live_once_each(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    seen = await log(account)
    missed = [await log(account), await log(account)]
    items = follow_changes(follower, everything_of(account), Position(seen.id, seen.created_at))
    received = [await anext(items), await anext(items)]
    live = [await log(account), await log(account)]
    await announce(bus, live[-1], account)
    async with asyncio.timeout(3):
        received += [await anext(items), await anext(items)]
    assert [item.id for item in received if isinstance(item, Change)] == [
        row.id for row in missed + live
    ]
    nothing = asyncio.ensure_future(anext(items))
    await asyncio.sleep(0.2)
    assert not nothing.done()
    nothing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await nothing
    await items.aclose()


async def test_a_listener_that_overflows_reads_the_log_instead(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    items = follow_changes(follower, everything_of(account), None)
    first = asyncio.ensure_future(anext(items))
    for _ in range(300):
        if follower.listener_count:
            break
        await asyncio.sleep(0.01)
    rows = [await log(account) for _ in range(10)]  # the listener holds 3
    await announce(bus, rows[-1], account)
    async with asyncio.timeout(3):
        received = [await first] + [await anext(items) for _ in range(9)]
    assert [item.id for item in received if isinstance(item, Change)] == [r.id for r in rows]
    await items.aclose()


async def test_a_cursor_ahead_of_this_process_skips_what_it_already_has(
    db: Settings, tail: tuple[ChangeTail, InProcessBus]
) -> None:
    follower, bus = tail
    made = await make_owner()
    account = await make_account(made.owner)
    async with follower.listen(everything_of(account)):
        await caught_up(follower)
    # Another process already delivered these two; this one's tail has not seen them yet.
    delivered = [await log(account), await log(account)]
    fresh = await log(account)
    items = follow_changes(
        follower, everything_of(account), Position(delivered[-1].id, delivered[-1].created_at)
    )
    await announce(bus, fresh, account)
    async with asyncio.timeout(3):
        item = await anext(items)
    assert not isinstance(item, Gap)
    assert item.id == fresh.id
    await items.aclose()
