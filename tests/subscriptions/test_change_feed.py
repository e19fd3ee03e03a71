"""app.services.change_feed: rows after a cursor, per principal, in order; cursors; gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.auth.principal import Principal
from app.models import Account, ChangeLogEntry
from app.services.change_feed import (
    ACCOUNT_KINDS,
    MESSAGE_KINDS,
    FeedFilter,
    Position,
    filter_for,
    find_gaps,
    read_changes,
)
from app.services.errors import InvalidInput, NotFound
from app.settings import Settings
from app.types import ALL_ACTIONS, AccountId, ChangeKind, OwnerId, TokenId
from tests.factories import make_account, make_owner


async def log(account: Account, kind: ChangeKind = ChangeKind.MESSAGE_ADDED) -> ChangeLogEntry:
    return await ChangeLogEntry.create(account_id=account.id, kind=kind, message_id=1)


def principal(owner_id: int, account_ids: set[int] | None = None) -> Principal:
    return Principal(
        owner_id=OwnerId(owner_id),
        token_id=TokenId(1),
        actions=ALL_ACTIONS,
        account_ids=None if account_ids is None else frozenset(AccountId(a) for a in account_ids),
    )


def test_a_cursor_names_a_position_and_nothing_else_is_one() -> None:
    position = Position(12345, datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=UTC))
    assert Position.from_cursor(position.cursor) == position
    assert position.cursor.isascii()
    assert "=" not in position.cursor
    for garbage in ("", "x", "YzE6MTI", "YzI6MTI6MTM", "QWNjb3VudDox", "a" * 200, "YzE6LTE6MA"):
        with pytest.raises(InvalidInput):
            Position.from_cursor(garbage)


async def test_rows_come_in_id_order_for_the_filter_only(db: Settings) -> None:
    made, stranger = await make_owner(), await make_owner()
    first, second = await make_account(made.owner), await make_account(made.owner)
    foreign = await make_account(stranger.owner)
    start = (await log(first)).id - 1
    expected = []
    for account in (first, foreign, second, first):
        row = await log(account)
        if account is not foreign:
            expected.append(row.id)
    status = await log(first, ChangeKind.ACCOUNT_STATUS)

    every = FeedFilter(OwnerId(made.owner.id), None, MESSAGE_KINDS)
    changes = await read_changes(every, after=start + 1, up_to=None)
    assert [c.id for c in changes] == expected
    assert {c.owner_id for c in changes} == {made.owner.id}

    assert [c.id for c in await read_changes(every, after=start + 1, up_to=expected[1])] == (
        expected[:2]
    )
    assert [c.id for c in await read_changes(every, after=start + 1, up_to=None, limit=1)] == (
        expected[:1]
    )
    only_second = FeedFilter(
        OwnerId(made.owner.id), frozenset({AccountId(second.id)}), MESSAGE_KINDS
    )
    assert [c.account_id for c in await read_changes(only_second, after=start, up_to=None)] == [
        second.id
    ]
    statuses = FeedFilter(OwnerId(made.owner.id), None, ACCOUNT_KINDS)
    assert [c.id for c in await read_changes(statuses, after=start, up_to=None)] == [status.id]


async def test_a_filter_covers_only_accounts_the_principal_may_touch(db: Settings) -> None:
    made, stranger = await make_owner(), await make_owner()
    mine, other = await make_account(made.owner), await make_account(made.owner)
    foreign = await make_account(stranger.owner)
    scoped = principal(made.owner.id, {mine.id})

    feed = await filter_for(scoped, MESSAGE_KINDS)
    assert feed.account_ids == {mine.id}
    assert (await filter_for(scoped, MESSAGE_KINDS, [mine.id])).account_ids == {mine.id}
    for refused in ([other.id], [foreign.id], [mine.id, 10**12]):
        with pytest.raises(NotFound):
            await filter_for(scoped, MESSAGE_KINDS, refused)
    with pytest.raises(NotFound):
        await filter_for(principal(made.owner.id), MESSAGE_KINDS, [foreign.id])
    with pytest.raises(InvalidInput):
        await filter_for(principal(made.owner.id), MESSAGE_KINDS, list(range(1, 200)))


async def test_gaps_are_reported_for_accounts_that_lost_rows_after_the_cursor(
    db: Settings,
) -> None:
    made = await make_owner()
    kept, purged, empty = [await make_account(made.owner) for _ in range(3)]
    await log(kept)
    await log(purged)
    cursor_row = await log(purged)
    after = Position(cursor_row.id, cursor_row.created_at)
    later = await make_account(made.owner)  # connected after the cursor was handed out
    await Account.filter(id=later.id).update(created_at=after.at + timedelta(hours=1))
    lost = await log(purged)
    for account in (kept, purged, later):
        await log(account)
    feed = FeedFilter(OwnerId(made.owner.id), None, MESSAGE_KINDS)
    assert await find_gaps(feed, after) == []

    # The purge deletes an account's oldest rows: here up to one the client never saw.
    await ChangeLogEntry.filter(account_id=purged.id, id__lte=lost.id).delete()
    assert await find_gaps(feed, after) == [purged.id]
    narrowed = FeedFilter(OwnerId(made.owner.id), frozenset({AccountId(kept.id)}), MESSAGE_KINDS)
    assert await find_gaps(narrowed, after) == []
    # Rows purged only up to the cursor lose nothing the client has not seen.
    await ChangeLogEntry.filter(account_id=kept.id, id__lte=cursor_row.id).delete()
    assert await find_gaps(feed, after) == [kept.id, purged.id]  # existed at the cursor: unsure
    assert empty.id not in await find_gaps(feed, after)


async def test_a_log_purged_past_the_cursor_is_a_gap_even_for_newer_accounts(
    db: Settings,
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    cursor_row = await log(account)
    newer = await make_account(made.owner)
    await Account.filter(id=newer.id).update(created_at=cursor_row.created_at + timedelta(hours=1))
    await log(newer)
    after = Position(cursor_row.id, cursor_row.created_at)
    feed = FeedFilter(OwnerId(made.owner.id), frozenset({AccountId(newer.id)}), MESSAGE_KINDS)
    assert await find_gaps(feed, after) == []
    # Every row up to the cursor is gone, as after a log-wide purge by age.
    await ChangeLogEntry.filter(id__lte=cursor_row.id).delete()
    assert await find_gaps(feed, after) == [newer.id]
