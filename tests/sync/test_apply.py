"""sync.apply: one batch, one transaction, idempotent; deletions, flags, sweep, retention, fence."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import clock
from app.events import AccountChanged, InProcessBus
from app.models import (
    Account,
    Attachment,
    ChangeLogEntry,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    SyncState,
    Thread,
)
from app.settings import Settings
from app.types import ChangeKind, FolderRole, SyncPhase
from sync.apply import (
    AccountGone,
    FullSyncPass,
    LeaseLost,
    apply_batch,
    folders_unknown_to_cache,
)
from sync.providers.records import (
    Address,
    AttachmentRecord,
    ChangeBatch,
    FlagsRecord,
    FolderRecord,
    FolderResync,
    MessageContent,
    MessageRecord,
)
from tests.factories import make_account, make_owner
from tests.sync.harness import cache_snapshot

FOLDERS = (
    FolderRecord("INBOX", "INBOX", FolderRole.INBOX),
    FolderRecord("STARRED", "STARRED", FolderRole.STARRED),
    FolderRecord("Label_1", "Work"),
)
ALICE = Address("Alice", "alice@example.com")
BOB = Address("Bob", "bob@example.org")


def record(provider_id: str, thread: str, minute: int, **overrides: Any) -> MessageRecord:
    fields: dict[str, Any] = {
        "provider_id": provider_id,
        "thread_provider_id": thread,
        "subject": f"Subject of {thread}",
        "date": datetime(2024, 3, 1, 8, minute, tzinfo=UTC),
        "from_addresses": (ALICE,),
        "to_addresses": (BOB,),
        "snippet": f"snippet {provider_id}",
        "unread": True,
        "label_ids": ("INBOX", "UNREAD"),
        "content": MessageContent("text", "<p>html</p>", (("Subject", "x"),)),
    }
    fields.update(overrides)
    return MessageRecord(**fields)


def first_batch() -> ChangeBatch:
    return ChangeBatch(
        folders=FOLDERS,
        upserts=[
            record("m1", "t1", 1),
            record(
                "m2",
                "t1",
                2,
                from_addresses=(BOB,),
                to_addresses=(ALICE,),
                label_ids=("INBOX", "Label_1"),
                unread=False,
                attachments=(AttachmentRecord("a.pdf", "application/pdf", 10, part_id="2"),),
            ),
            record("m3", "t2", 3),
        ],
        cursor="100",
    )


async def account_with_state(**overrides: Any) -> Account:
    owner = await make_owner()
    account = await make_account(owner.owner, **overrides)
    await SyncState.create(account_id=account.id)
    return account


async def change_kinds(account: Account) -> list[tuple[str, str | None]]:
    rows = await ChangeLogEntry.filter(account_id=account.id).order_by("id")
    return [(row.kind.value, row.provider_id) for row in rows]


async def test_a_batch_fills_the_cache_and_stores_its_cursor(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    async with bus.subscribe() as queue:
        result = await apply_batch(account.id, first_batch(), events=bus)
        event = queue.get_nowait()
    assert (result.added, result.changed, result.deleted) == (3, 0, 0)
    assert isinstance(event, AccountChanged)
    assert event == AccountChanged(account.owner_id, account.id, result.change_id or 0)
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.phase) == ("100", SyncPhase.INCREMENTAL)

    snapshot = await cache_snapshot(account.id)
    assert snapshot.messages["m2"]["labels"] == ["INBOX", "Label_1"]
    assert snapshot.messages["m1"]["labels"] == ["INBOX"]  # UNREAD is a flag, not a folder
    assert snapshot.messages["m2"]["attachments"] == [("a.pdf", "application/pdf", 10, "2")]
    assert snapshot.messages["m1"]["body"] == ("text", "<p>html</p>")
    thread = snapshot.threads["t1"]
    assert thread["message_count"] == 2
    assert thread["unread_count"] == 1
    assert thread["snippet"] == "snippet m2"
    assert thread["subject"] == "Subject of t1"
    assert [p["email"] for p in thread["participants"]] == [ALICE.email, BOB.email]
    assert await change_kinds(account) == [
        ("message_added", "m1"),
        ("message_added", "m2"),
        ("message_added", "m3"),
    ]


async def test_replaying_a_batch_changes_nothing(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    before = await cache_snapshot(account.id)
    ids_before = await Message.filter(account_id=account.id).values_list("provider_id", "id")
    changes_before = await change_kinds(account)

    async with bus.subscribe() as queue:
        replay = await apply_batch(account.id, first_batch(), events=bus)
        assert queue.empty()

    assert (replay.added, replay.changed, replay.deleted, replay.change_id) == (0, 0, 0, None)
    assert await cache_snapshot(account.id) == before
    assert sorted(
        await Message.filter(account_id=account.id).values_list("provider_id", "id")
    ) == sorted(ids_before)
    assert await change_kinds(account) == changes_before
    assert await Thread.filter(account_id=account.id).count() == 2


async def test_flags_update_cached_messages_and_never_create_one(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    result = await apply_batch(
        account.id,
        ChangeBatch(
            flag_updates=[
                FlagsRecord("m1", ("INBOX", "STARRED"), unread=False, starred=True),
                FlagsRecord("never-seen", ("INBOX",), unread=False, starred=False),
            ],
            cursor="101",
        ),
        events=bus,
    )
    assert (result.added, result.changed) == (0, 1)
    assert not await Message.filter(provider_id="never-seen").exists()
    snapshot = await cache_snapshot(account.id)
    assert snapshot.messages["m1"]["labels"] == ["INBOX", "STARRED"]
    assert (snapshot.messages["m1"]["unread"], snapshot.messages["m1"]["starred"]) == (False, True)
    assert snapshot.threads["t1"]["unread_count"] == 0
    assert (await change_kinds(account))[-1] == ("message_changed", "m1")


async def test_deletions_remove_the_message_and_everything_hanging_off_it(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    m2 = await Message.get(account_id=account.id, provider_id="m2")
    m3 = await Message.get(account_id=account.id, provider_id="m3")

    result = await apply_batch(
        account.id, ChangeBatch(deletions=["m2", "m3", "unknown"], cursor="102"), events=bus
    )

    assert result.deleted == 2
    assert not await Message.filter(id__in=[m2.id, m3.id]).exists()
    assert not await MessageLabel.filter(message_id=m2.id).exists()
    assert not await MessageBody.filter(message_id=m2.id).exists()
    assert not await Attachment.filter(message_id=m2.id).exists()
    snapshot = await cache_snapshot(account.id)
    assert set(snapshot.threads) == {"t1"}  # t2 lost its only message
    assert snapshot.threads["t1"]["message_count"] == 1
    deleted = await ChangeLogEntry.filter(
        account_id=account.id, kind=ChangeKind.MESSAGE_DELETED
    ).values_list("provider_id", "message_id")
    assert sorted(deleted) == [("m2", m2.id), ("m3", m3.id)]


async def test_a_changed_message_replaces_its_labels_and_attachments(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    moved = record("m2", "t1", 2, label_ids=("STARRED",), attachments=())
    result = await apply_batch(account.id, ChangeBatch(upserts=[moved]), events=bus)
    assert result.changed == 1
    snapshot = await cache_snapshot(account.id)
    assert snapshot.messages["m2"]["labels"] == ["STARRED"]
    assert snapshot.messages["m2"]["attachments"] == []
    assert snapshot.messages["m2"]["has_attachments"] is False


async def test_metadata_records_keep_attachments_known_from_before(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    metadata = record(
        "m2",
        "t1",
        2,
        from_addresses=(BOB,),
        to_addresses=(ALICE,),
        label_ids=("INBOX", "Label_1"),
        unread=False,
        content=None,
        attachments_known=False,
    )
    result = await apply_batch(account.id, ChangeBatch(upserts=[metadata]), events=bus)
    assert result.changed == 0
    snapshot = await cache_snapshot(account.id)
    assert snapshot.messages["m2"]["attachments"] == [("a.pdf", "application/pdf", 10, "2")]
    assert snapshot.messages["m2"]["body"] == ("text", "<p>html</p>")


async def test_bodies_are_stored_only_when_the_account_caches_them(db: Settings) -> None:
    account = await account_with_state(cache_bodies=False)
    await apply_batch(account.id, first_batch(), events=InProcessBus())
    ids = await Message.filter(account_id=account.id).values_list("id", flat=True)
    assert len(ids) == 3
    assert not await MessageBody.filter(message_id__in=ids).exists()


async def test_records_older_than_the_retention_are_skipped(db: Settings) -> None:
    clock.freeze(datetime(2024, 3, 1, 8, 2, 30, tzinfo=UTC) + timedelta(days=1))
    account = await account_with_state(retention_days=1)
    result = await apply_batch(account.id, first_batch(), events=InProcessBus())
    assert (result.added, result.skipped_by_retention) == (1, 2)
    assert set((await cache_snapshot(account.id)).messages) == {"m3"}


async def test_a_batch_for_a_deleted_account_writes_nothing(db: Settings) -> None:
    account = await account_with_state()
    await Account.filter(id=account.id).delete()
    with pytest.raises(AccountGone):
        await apply_batch(account.id, first_batch(), events=InProcessBus())
    assert not await Message.filter(account_id=account.id).exists()
    assert not await Thread.filter(account_id=account.id).exists()
    assert not await Folder.filter(account_id=account.id).exists()


async def test_a_batch_racing_an_account_deletion_never_recreates_rows(db: Settings) -> None:
    account = await account_with_state()
    # Whichever commits first, the account ends with no rows at all.
    await asyncio.gather(
        Account.filter(id=account.id).delete(),
        _apply_ignoring_gone(account.id, first_batch()),
    )
    assert not await Message.filter(account_id=account.id).exists()
    assert not await Thread.filter(account_id=account.id).exists()


async def _apply_ignoring_gone(account_id: int, batch: ChangeBatch) -> None:
    with contextlib.suppress(AccountGone):
        await apply_batch(account_id, batch, events=InProcessBus())


async def test_a_worker_that_lost_its_lease_writes_nothing(db: Settings) -> None:
    account = await account_with_state()
    await SyncState.filter(account_id=account.id).update(lease_owner="worker-b")
    with pytest.raises(LeaseLost):
        await apply_batch(account.id, first_batch(), events=InProcessBus(), lease_owner="worker-a")
    assert not await Message.filter(account_id=account.id).exists()
    state = await SyncState.get(account_id=account.id)
    assert state.cursor is None


async def test_the_last_page_of_a_full_sync_removes_what_it_did_not_list(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)  # m1, m2, m3 cached
    full_sync = FullSyncPass.begin()

    first_page = ChangeBatch(folders=FOLDERS, upserts=[record("m1", "t1", 1)], next_page_token="p2")
    await apply_batch(account.id, first_page, events=bus, full_sync=full_sync)
    state = await SyncState.get(account_id=account.id)
    assert state.phase == SyncPhase.INITIAL
    assert state.full_sync_page_token is not None
    # The stored token carries the pass, so a worker that resumes it keeps the mark.
    assert FullSyncPass.resume(state.full_sync_page_token) == (full_sync, "p2")
    assert await Message.filter(account_id=account.id).count() == 3

    last_page = ChangeBatch(upserts=[record("m4", "t3", 4)], cursor="200")
    result = await apply_batch(account.id, last_page, events=bus, full_sync=full_sync)

    assert (result.added, result.deleted) == (1, 2)
    assert set((await cache_snapshot(account.id)).messages) == {"m1", "m4"}
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.full_sync_page_token, state.phase) == (
        "200",
        None,
        SyncPhase.INCREMENTAL,
    )


async def test_a_folder_resync_removes_what_the_folder_no_longer_holds(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    moved_away = record("m3", "t2", 3, label_ids=("Label_1",))
    batch = ChangeBatch(
        upserts=[moved_away], folder_resyncs=[FolderResync("INBOX", frozenset({"m2"}))]
    )
    result = await apply_batch(account.id, batch, events=bus)
    assert result.deleted == 1
    assert set((await cache_snapshot(account.id)).messages) == {"m2", "m3"}


async def test_a_complete_folder_list_removes_folders_it_lacks(db: Settings) -> None:
    account = await account_with_state()
    bus = InProcessBus()
    await apply_batch(account.id, first_batch(), events=bus)
    await apply_batch(account.id, ChangeBatch(folders=FOLDERS[:2]), events=bus)
    assert set(
        await Folder.filter(account_id=account.id).values_list("provider_id", flat=True)
    ) == {
        "INBOX",
        "STARRED",
    }
    assert (await cache_snapshot(account.id)).messages["m2"]["labels"] == ["INBOX"]


async def test_labels_unknown_to_the_cache_are_reported(db: Settings) -> None:
    account = await account_with_state()
    await apply_batch(account.id, first_batch(), events=InProcessBus())
    batch = ChangeBatch(upserts=[record("m9", "t9", 9, label_ids=("INBOX", "UNREAD", "Label_2"))])
    assert await folders_unknown_to_cache(account.id, batch) == {"UNREAD", "Label_2"}
    assert await folders_unknown_to_cache(account.id, ChangeBatch(folders=FOLDERS)) == set()


def test_an_unreadable_stored_page_token_is_no_pass() -> None:
    assert FullSyncPass.resume("no separator") is None
    assert FullSyncPass.resume("2024-01-01T00:00:00|token") is None  # no time zone
    assert FullSyncPass.resume("2024-01-01T00:00:00+00:00|") is None
