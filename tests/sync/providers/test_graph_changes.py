"""GraphAdapter.changes_since against the emulator: random histories, moves, dead delta tokens."""

from __future__ import annotations

import random
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from emulators.graph_mime import Attachment
from emulators.graph_testing import EmulatedMailbox, ServedEmulator, serve_for_tests
from sync.providers.errors import CursorExpired
from sync.providers.graph import GraphAdapter
from sync.providers.records import ChangeBatch
from tests.sync.providers.test_graph import (
    Cache,
    clock,
    expected_folders,
    expected_messages,
    fill_mailbox,
    folder_view,
    full_sync,
    graph_adapter,
    record_view,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_for_tests(tmp_path_factory.mktemp("graph-changes-tls"), clock=clock) as served:
        yield served


@pytest.fixture
def mailbox(served: ServedEmulator) -> EmulatedMailbox:
    return served.new_mailbox()


async def synced(adapter: GraphAdapter, cache: Cache) -> str:
    cursor = (await full_sync(adapter, cache))[-1].cursor
    assert cursor is not None
    return cursor


def assert_in_step(cache: Cache, served: ServedEmulator, mailbox: EmulatedMailbox) -> None:
    assert record_view(cache) == expected_messages(served, mailbox)
    assert folder_view(cache) == expected_folders(served, mailbox)


ACTIONS = (
    *("create", "create", "move", "move", "move", "flag", "read", "delete"),
    *("folder", "rename", "drop folder"),
)


class History:
    """Random mailbox changes through the emulator's controls, remembering what moved."""

    def __init__(self, served: ServedEmulator, mailbox: EmulatedMailbox, seed: int) -> None:
        self.emulator = served.emulator
        self.oid = mailbox.oid
        self.rng = random.Random(seed)
        self.moved: set[str] = set()
        self.created_folders = 0

    def messages(self) -> list[str]:
        return sorted(m.immutable_id for m in self.emulator.store.messages(self.oid))

    def folders(self) -> list[str]:
        return [f.id for f in self.emulator.folders(self.oid)]

    def step(self) -> None:
        rng, emulator, oid = self.rng, self.emulator, self.oid
        messages = self.messages()
        action = rng.choice(ACTIONS)
        custom = [f.id for f in self.emulator.folders(oid) if f.well_known_name is None]
        if action == "create" or not messages:
            emulator.add_message(
                oid,
                folder=rng.choice(self.folders()),
                subject=f"new {rng.random():.6f}",
                text="fresh",
                attachments=[Attachment("a.txt", "text/plain", b"a")] if rng.random() < 0.3 else [],
            )
        elif action == "move":
            message_id = rng.choice(messages)
            here = emulator.message(oid, message_id).folder_id
            emulator.move_message(
                oid, message_id, rng.choice([f for f in self.folders() if f != here])
            )
            self.moved.add(message_id)
        elif action == "flag":
            emulator.update_message(
                oid, rng.choice(messages), flag_status=rng.choice(["flagged", "notFlagged"])
            )
        elif action == "read":
            emulator.update_message(
                oid, rng.choice(messages), is_read=rng.random() < 0.5, categories=["Green"]
            )
        elif action == "delete":
            message_id = rng.choice(messages)
            emulator.delete_message(oid, message_id)
            self.moved.discard(message_id)
        elif action == "rename" and custom:
            self.created_folders += 1
            emulator.rename_folder(oid, rng.choice(custom), f"Renamed {self.created_folders}")
        elif action == "drop folder" and custom:
            emulator.delete_folder(oid, rng.choice(custom))  # its messages and children go too
        else:
            self.created_folders += 1
            parent = rng.choice([None, *self.folders()])
            emulator.create_folder(oid, f"Folder {self.created_folders}", parent)

    def moved_and_still_there(self) -> set[str]:
        return self.moved & set(self.messages())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_histories_leave_the_cache_equal_to_the_mailbox(
    served: ServedEmulator, mailbox: EmulatedMailbox, seed: int
) -> None:
    fill_mailbox(served, mailbox, random.Random(seed), 30)
    history = History(served, mailbox, seed)
    cache = Cache()
    async with graph_adapter(served, mailbox, page_size=6) as adapter:
        cursor = await synced(adapter, cache)
        for _ in range(5):
            history.moved.clear()
            for _ in range(history.rng.randint(1, 12)):
                history.step()
            batch = await adapter.changes_since(cursor, with_content=history.rng.random() < 0.5)
            deleted = cache.apply(batch)
            assert batch.cursor is not None
            cursor = batch.cursor

            assert not deleted & history.moved_and_still_there(), "a move became a deletion"
            assert history.moved_and_still_there() <= {r.provider_id for r in batch.upserts}
            assert_in_step(cache, served, mailbox)
        quiet = await adapter.changes_since(cursor, with_content=False)
    assert (list(quiet.upserts), list(quiet.deletions), list(quiet.folder_resyncs)) == ([], [], [])


async def test_a_move_is_an_upsert_in_the_new_folder_with_the_same_id(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator = served.emulator
    message = emulator.add_message(mailbox.oid, subject="to archive")
    archive = emulator.folder(mailbox.oid, "archive").id
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        cursor = await synced(adapter, cache)
        emulator.move_message(mailbox.oid, message.immutable_id, "archive")
        batch = await adapter.changes_since(cursor, with_content=True)

    [moved] = batch.upserts
    assert (moved.provider_id, moved.label_ids) == (message.immutable_id, (archive,))
    assert moved.content is not None
    assert (list(batch.deletions), list(batch.folder_resyncs)) == ([], [])


async def test_a_removal_whose_destination_the_round_missed_is_checked_not_deleted(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator = served.emulator
    message = emulator.add_message(mailbox.oid, subject="moves late", folder="archive")
    gone = emulator.add_message(mailbox.oid, subject="deleted", folder="archive")
    inbox = emulator.folder(mailbox.oid, "inbox").id
    moved_already = False

    async def move_once_the_inbox_round_started(response: httpx.Response) -> None:
        # The inbox's round has fixed its window: the move lands after it, so only the
        # archive's removal reports it, and the adapter has to ask where the message went.
        nonlocal moved_already
        url = str(response.url)
        if not moved_already and inbox in url and "deltatoken" in url:
            emulator.move_message(mailbox.oid, message.immutable_id, "inbox")
            moved_already = True

    cache = Cache()
    async with graph_adapter(
        served,
        mailbox,
        max_concurrency=1,
        event_hooks={"response": [move_once_the_inbox_round_started]},
    ) as adapter:
        cursor = await synced(adapter, cache)
        emulator.delete_message(mailbox.oid, gone.immutable_id)
        batch = await adapter.changes_since(cursor, with_content=False)
        deleted = cache.apply(batch)
        assert moved_already
        later = await adapter.changes_since(batch.cursor or "", with_content=False)
        cache.apply(later)

    assert [(r.provider_id, r.label_ids) for r in batch.upserts] == [
        (message.immutable_id, (inbox,))
    ]
    assert deleted == {gone.immutable_id}
    assert list(later.deletions) == []
    assert_in_step(cache, served, mailbox)


async def test_a_dead_delta_token_restarts_only_that_folder(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    fill_mailbox(served, mailbox, random.Random(9), 30)
    receipts = emulator.create_folder(oid, "Old receipts")
    kept = [emulator.add_message(oid, folder=receipts.id, subject=f"r{n}") for n in range(5)]
    cache = Cache()
    async with graph_adapter(served, mailbox, page_size=3) as adapter:
        cursor = await synced(adapter, cache)
        emulator.delete_message(oid, kept[0].immutable_id)
        emulator.move_message(oid, kept[1].immutable_id, "inbox")
        emulator.update_message(oid, kept[2].immutable_id, flag_status="flagged")
        added = emulator.add_message(oid, folder=receipts.id, subject="new receipt")
        emulator.add_message(oid, subject="new in inbox")
        emulator.expire_delta_tokens(oid, receipts.id)
        batch = await adapter.changes_since(cursor, with_content=False)
        deleted = cache.apply(batch)
        after = await adapter.changes_since(batch.cursor or "", with_content=False)
        cache.apply(after)

    assert batch.folder_resyncs[0].folder_provider_id == receipts.id
    assert len(batch.folder_resyncs) == 1
    assert batch.folder_resyncs[0].provider_ids == {
        kept[2].immutable_id,
        kept[3].immutable_id,
        kept[4].immutable_id,
        added.immutable_id,
    }
    assert deleted == {kept[0].immutable_id}, "deleted mail stays deleted, moved mail stays"
    assert cache.messages[kept[1].immutable_id].label_ids == (emulator.folder(oid, "inbox").id,)
    assert (list(after.upserts), list(after.folder_resyncs)) == ([], [])
    assert_in_step(cache, served, mailbox)


async def test_only_the_dead_folder_starts_from_scratch(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    fill_mailbox(served, mailbox, random.Random(4), 20)
    cache = Cache()
    seen: list[str] = []

    async def remember(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with graph_adapter(served, mailbox, event_hooks={"request": [remember]}) as adapter:
        cursor = await synced(adapter, cache)
        emulator.expire_delta_tokens(oid, "junkemail")
        seen.clear()
        batch = await adapter.changes_since(cursor, with_content=False)
        cache.apply(batch)

    junk = emulator.folder(oid, "junkemail").id
    from_scratch = [url for url in seen if "/messages/delta?" in url and "token=" not in url]
    assert len(from_scratch) == 1
    assert quote(junk, safe="") in from_scratch[0]
    assert {r.provider_id for r in batch.upserts} == {
        m.immutable_id for m in emulator.store.messages(oid, junk)
    }
    assert_in_step(cache, served, mailbox)


async def test_a_dead_folder_tree_token_restarts_the_tree_only(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    doomed = emulator.create_folder(oid, "Doomed")
    emulator.add_message(oid, folder=doomed.id, subject="goes with its folder")
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        cursor = await synced(adapter, cache)
        emulator.delete_folder(oid, doomed.id)
        emulator.create_folder(oid, "Newcomer")
        emulator.expire_delta_tokens(oid)  # the tree and every folder
        batch = await adapter.changes_since(cursor, with_content=False)
        deleted = cache.apply(batch)

    assert batch.folders is not None
    assert doomed.id not in {f.provider_id for f in batch.folders}
    assert len(deleted) == 1
    assert_in_step(cache, served, mailbox)


async def test_a_deleted_folder_takes_its_messages_along(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    doomed = emulator.create_folder(oid, "Doomed")
    inside = [emulator.add_message(oid, folder=doomed.id, subject=f"d{n}") for n in range(3)]
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        cursor = await synced(adapter, cache)
        emulator.move_message(oid, inside[0].immutable_id, "inbox")
        emulator.delete_folder(oid, doomed.id)
        batch = await adapter.changes_since(cursor, with_content=False)
        deleted = cache.apply(batch)

    assert deleted == {inside[1].immutable_id, inside[2].immutable_id}
    assert inside[0].immutable_id in {r.provider_id for r in batch.upserts}
    assert_in_step(cache, served, mailbox)


async def test_a_new_folder_is_synced_from_scratch(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    message = emulator.add_message(oid, subject="will be filed")
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        cursor = await synced(adapter, cache)
        filed = emulator.create_folder(oid, "Filed", "inbox")
        emulator.move_message(oid, message.immutable_id, filed.id)
        emulator.add_message(oid, folder=filed.id, subject="straight in")
        batch = await adapter.changes_since(cursor, with_content=False)
        cache.apply(batch)

    assert cache.folders[filed.id].parent_provider_id == emulator.folder(oid, "inbox").id
    assert cache.messages[message.immutable_id].label_ids == (filed.id,)
    assert list(batch.folder_resyncs) == []
    assert_in_step(cache, served, mailbox)


async def test_a_dead_skip_token_during_full_sync_restarts_that_folder(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    inbox = [emulator.add_message(oid, subject=f"i{n}") for n in range(12)]
    cache = Cache()
    async with graph_adapter(served, mailbox, page_size=4) as adapter:
        batch = await adapter.full_sync_page(None, with_content=False)
        cache.apply(batch)
        emulator.expire_delta_tokens(oid, "inbox")
        first_page_ids = {r.provider_id for r in batch.upserts} & {m.immutable_id for m in inbox}
        victim = sorted(first_page_ids)[0]
        emulator.delete_message(oid, victim)
        batches: list[ChangeBatch] = []
        while batch.cursor is None:
            batch = await adapter.full_sync_page(batch.next_page_token, with_content=False)
            batches.append(batch)
            cache.apply(batch)

    assert victim not in cache.messages
    resyncs = batches[-1].folder_resyncs
    assert [r.folder_provider_id for r in resyncs] == [emulator.folder(oid, "inbox").id]
    assert_in_step(cache, served, mailbox)


async def test_an_unreadable_cursor_means_cursor_expired(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    async with graph_adapter(served, mailbox) as adapter:
        with pytest.raises(CursorExpired):
            await adapter.changes_since("not a Graph cursor", with_content=False)
