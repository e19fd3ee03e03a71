"""The engine with the production Graph adapter against the emulated Microsoft cloud over https.

Accounts run as in production: ``sync.sessions.AdapterFactory`` builds the ``GraphAdapter``, its
token source opens the sealed grant and refreshes it with MSAL. The cache (messages, folders,
flags, categories, threads and the API ids) must equal the mailbox after random sequences of
deliveries, moves, flag and read changes, deletions and folder creation, renaming and deletion;
a dead delta token resyncs that folder alone; a 429 is honoured to the second and the mailbox
never sees more than 4 requests at once; a revoked grant stops the account for good.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import clock
from app.events import InProcessBus
from app.models import Account, ChangeLogEntry, Message, SyncState
from app.services.vault_keys import configure_vault
from app.settings import Settings
from app.types import AccountStatus, ChangeKind, SyncPhase
from emulators.graph_testing import EmulatedMailbox, ServedEmulator, serve_for_tests
from resolvers.ids import encode_id
from sync.engine import OutcomeKind, SyncOutcome, scheduled_sync, sync_account
from sync.jobs import run_jobs
from sync.providers.adapter import MailboxAdapter
from sync.sessions import AdapterFactory
from tests.factories import make_owner
from tests.sync.graph_harness import (
    ShiftableClock,
    connect_graph_account,
    graph_cache_truth,
    graph_settings,
    graph_truth,
    sign_in,
)
from tests.sync.harness import cache_snapshot, park_other_accounts, thread_counts
from vault import KeyRing, generate_key

emulator_clock = ShiftableClock()


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    tls_dir = tmp_path_factory.mktemp("graph-sync-tls")
    with serve_for_tests(tls_dir, clock=emulator_clock) as served:
        yield served


@pytest.fixture(scope="module")
def microsoft_settings(db: Settings, graph: ServedEmulator) -> Settings:
    running = graph.running
    return graph_settings(db, running.base_url, graph.emulator.tenant_id, graph.tls.ca_path)


class CountingAdapters:
    """The production ``AdapterFactory``, counting the adapters the engine asks for."""

    def __init__(self, settings: Settings) -> None:
        self.factory = AdapterFactory(settings, InProcessBus())
        self.built = 0

    async def open_adapter(self, account: Account) -> MailboxAdapter:
        self.built += 1
        return await self.factory.open_adapter(account)


@pytest.fixture
async def adapters(microsoft_settings: Settings) -> AsyncIterator[CountingAdapters]:
    configure_vault(KeyRing([generate_key()]))
    counting = CountingAdapters(microsoft_settings)
    try:
        yield counting
    finally:
        await counting.factory.aclose()
        configure_vault(None)


async def connected(graph: ServedEmulator) -> tuple[EmulatedMailbox, Account]:
    mailbox = graph.new_mailbox()
    running = graph.running
    grant = await sign_in(
        running.base_url, graph.emulator.tenant_id, graph.tls.ca_path, mailbox.address
    )
    owner = await make_owner()
    return mailbox, await connect_graph_account(owner.owner, mailbox.address, grant)


async def sync(adapters: CountingAdapters, account: Account) -> SyncOutcome:
    return await sync_account(account.id, adapters.open_adapter, InProcessBus())


async def assert_cache_equals_mailbox(graph: ServedEmulator, oid: str, account: Account) -> None:
    """Messages (thread, folder, categories, flags, Message-ID) and folders (name, parent) are
    the mailbox's; thread counts agree with the messages."""
    snapshot = await cache_snapshot(account.id)
    assert graph_cache_truth(snapshot) == graph_truth(graph.emulator.store, oid)
    stored = {
        thread: (row["message_count"], row["unread_count"])
        for thread, row in snapshot.threads.items()
    }
    assert stored == thread_counts(snapshot)


async def api_ids(account: Account) -> dict[str, str]:
    """Provider id -> the id the GraphQL API gives the message."""
    rows = await Message.filter(account_id=account.id).values_list("provider_id", "id")
    return {provider_id: encode_id("Message", row_id) for provider_id, row_id in rows}


def mailbox_requests(graph: ServedEmulator, oid: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = graph.emulator.stats()["requests"]
    return [r for r in requests if r["mailbox"] == oid]


class RandomChanges:
    """What a user and their correspondents do to a mailbox, drawn from a seeded generator."""

    def __init__(self, graph: ServedEmulator, oid: str, rng: random.Random) -> None:
        self.emulator = graph.emulator
        self.oid = oid
        self.rng = rng
        self.names = itertools.count(1)
        self.moved: set[str] = set()
        self.rounds = 0
        self.folder_changes: Counter[str] = Counter()
        self.custom = [self.emulator.create_folder(oid, "Projects").id]

    def ids(self) -> list[str]:
        return sorted(m.immutable_id for m in self.emulator.store.messages(self.oid))

    def folders(self) -> list[str]:
        return ["inbox", "inbox", "archive", "sentitems", "deleteditems", *self.custom]

    def deliver(self) -> str:
        existing = self.ids()
        parent = None
        if existing and self.rng.random() < 0.4:
            parent = self.emulator.message(self.oid, self.rng.choice(existing))
        n = next(self.names)
        return self.emulator.add_message(
            self.oid,
            folder=self.rng.choice(self.folders()),
            subject=f"Re: {parent.content.subject}" if parent else f"Message {n}",
            text=f"Body {n}",
            in_reply_to=parent.internet_message_id if parent else None,
            is_read=self.rng.random() < 0.5,
            flag_status=self.rng.choice(["notFlagged", "flagged", "complete"]),
            categories=self.rng.choice([(), ("Red",), ("Red", "Blue team")]),
        ).immutable_id

    def apply(self, count: int) -> None:
        for _ in range(count):
            existing = self.ids()
            kind = self.rng.choice(
                ["deliver", "deliver", "move", "move", "flags", "flags", "delete", "flash"]
            )
            if kind == "deliver" or not existing:
                self.deliver()
            elif kind == "move":
                message_id = self.rng.choice(existing)
                self.emulator.move_message(self.oid, message_id, self.rng.choice(self.folders()))
                self.moved.add(message_id)
            elif kind == "flags":
                self.emulator.update_message(
                    self.oid,
                    self.rng.choice(existing),
                    is_read=self.rng.random() < 0.5,
                    flag_status=self.rng.choice(["notFlagged", "flagged"]),
                    categories=self.rng.choice([[], ["Red"], ["Green"]]),
                )
            elif kind == "delete":
                self.emulator.delete_message(self.oid, self.rng.choice(existing))
            else:  # delivered and deleted between two syncs: must never show up
                self.emulator.delete_message(self.oid, self.deliver())
        self.change_folders()

    def change_folders(self) -> None:
        """One folder created (and used at once), renamed or deleted, or none. The first three
        rounds do one of each, so that every seed covers them; later rounds draw."""
        self.rounds += 1
        if self.rounds <= 3:
            kind = ("create", "rename", "delete")[self.rounds - 1]
        else:
            kind = self.rng.choice(["create", "rename", "delete", "none"])
        if kind == "delete" and len(self.custom) < 2:
            kind = "create"  # "Projects" stays, so that later moves always have a custom folder
        if kind == "create":
            parent = self.rng.choice([None, "inbox", *self.custom])
            folder = self.emulator.create_folder(self.oid, f"Folder {next(self.names)}", parent)
            self.custom.append(folder.id)
            for message_id in self.rng.sample(self.ids(), min(3, len(self.ids()))):
                self.emulator.move_message(self.oid, message_id, folder.id)
                self.moved.add(message_id)
        elif kind == "rename":
            folder_id = self.rng.choice(self.custom)
            self.emulator.rename_folder(self.oid, folder_id, f"Renamed {next(self.names)}")
        elif kind == "delete":
            # Its mail and its subfolders go with it.
            self.emulator.delete_folder(self.oid, self.rng.choice(self.custom[1:]))
            existing = {f.id for f in self.emulator.folders(self.oid)}
            self.custom = [f for f in self.custom if f in existing]
        self.folder_changes[kind] += 1


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_end_with_the_cache_equal_to_the_mailbox(
    db: Settings, graph: ServedEmulator, adapters: CountingAdapters, seed: int
) -> None:
    rng = random.Random(seed)
    mailbox, account = await connected(graph)
    changes = RandomChanges(graph, mailbox.oid, rng)
    for _ in range(40):
        changes.deliver()
    try:
        outcome = await sync(adapters, account)
        assert (outcome.kind, outcome.added, outcome.full_syncs) == (OutcomeKind.SYNCED, 40, 1)
        await assert_cache_equals_mailbox(graph, mailbox.oid, account)

        moved_and_kept = 0
        for _ in range(6):
            before = await api_ids(account)
            changes.moved.clear()
            changes.apply(rng.randint(5, 30))
            outcome = await sync(adapters, account)
            assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 0)
            await assert_cache_equals_mailbox(graph, mailbox.oid, account)
            after = await api_ids(account)
            # A message keeps its API id wherever it moved: updated, never re-created.
            assert {pid: after[pid] for pid in before.keys() & after.keys()} == {
                pid: before[pid] for pid in before.keys() & after.keys()
            }
            moved_and_kept += len(changes.moved & before.keys() & after.keys())
        assert moved_and_kept > 0
        assert {"create", "rename", "delete"} <= changes.folder_changes.keys()
    except AssertionError as failure:
        raise AssertionError(f"random changes with seed {seed}: {failure}") from failure

    assert await ChangeLogEntry.filter(account_id=account.id).count() > 0
    truth, _ = graph_truth(graph.emulator.store, mailbox.oid)
    assert await Message.filter(account_id=account.id).count() == len(truth)


async def test_moved_messages_keep_their_api_id(
    db: Settings, graph: ServedEmulator, adapters: CountingAdapters
) -> None:
    mailbox, account = await connected(graph)
    emulator, oid = graph.emulator, mailbox.oid
    travellers = [emulator.add_message(oid, subject=f"moves {n}") for n in range(6)]
    stays = emulator.add_message(oid, subject="stays")
    elsewhere = emulator.create_folder(oid, "Elsewhere")
    await sync(adapters, account)
    before = await api_ids(account)

    for n, message in enumerate(travellers):
        emulator.move_message(oid, message.immutable_id, ["archive", elsewhere.id][n % 2])
    emulator.move_message(oid, travellers[0].immutable_id, "deleteditems")  # twice in one round
    emulator.move_message(oid, travellers[1].immutable_id, "inbox")  # out and back
    outcome = await sync(adapters, account)

    assert (outcome.kind, outcome.added, outcome.deleted) == (OutcomeKind.SYNCED, 0, 0)
    assert outcome.changed == len(travellers) - 1  # the one back home is unchanged
    assert await api_ids(account) == before
    await assert_cache_equals_mailbox(graph, oid, account)
    assert stays.immutable_id in before


async def test_a_dead_delta_token_resyncs_that_folder_only(
    db: Settings, graph: ServedEmulator, adapters: CountingAdapters
) -> None:
    mailbox, account = await connected(graph)
    emulator, oid = graph.emulator, mailbox.oid
    rng = random.Random(5)
    receipts = emulator.create_folder(oid, "Receipts")
    for n in range(60):
        folder = rng.choice(["inbox", "archive", receipts.id])
        emulator.add_message(oid, folder=folder, subject=f"m{n}", text=f"body {n}")
    await sync(adapters, account)
    before = await api_ids(account)

    in_receipts = sorted(m.immutable_id for m in emulator.store.messages(oid, receipts.id))
    deleted = in_receipts[:4]
    for message_id in deleted:
        emulator.delete_message(oid, message_id)
    for message_id in in_receipts[4:7]:
        emulator.update_message(oid, message_id, is_read=True, flag_status="flagged")
    delivered = [emulator.add_message(oid, folder=receipts.id).immutable_id for _ in range(3)]
    inbox = emulator.folder(oid, "inbox").id
    moved_in = sorted(m.immutable_id for m in emulator.store.messages(oid, inbox))[0]
    emulator.move_message(oid, moved_in, receipts.id)
    emulator.expire_delta_tokens(oid, receipts.id)
    seen = len(mailbox_requests(graph, oid))

    outcome = await sync(adapters, account)

    assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 0)
    assert (outcome.added, outcome.deleted) == (3, 4)
    assert outcome.changed == 4  # three flagged, one moved in: nothing else was written
    requests = mailbox_requests(graph, oid)[seen:]
    gone = [r["path"] for r in requests if r["status"] == 410]
    assert gone == [f"/v1.0/me/mailFolders/{receipts.id}/messages/delta"]
    assert all(r["status"] == 200 for r in requests if r["status"] != 410), requests
    await assert_cache_equals_mailbox(graph, oid, account)
    after = await api_ids(account)
    assert not set(deleted) & after.keys()  # deleted mail stays deleted
    assert set(delivered) <= after.keys()
    assert {pid: after[pid] for pid in before.keys() - set(deleted)} == {
        pid: before[pid] for pid in before.keys() - set(deleted)
    }

    emulator.add_message(oid, folder=receipts.id)
    later = await sync(adapters, account)
    assert (later.added, later.changed, later.deleted, later.full_syncs) == (1, 0, 0, 0)


async def run_worker_for(adapters: CountingAdapters, settings: Settings, seconds: float) -> None:
    stop = asyncio.Event()
    runner = scheduled_sync(adapters.open_adapter, InProcessBus(), default_interval_seconds=60)
    worker = asyncio.create_task(run_jobs(settings, runner, stop_event=stop, idle_seconds=0.05))
    await asyncio.sleep(seconds)
    stop.set()
    await worker


async def run_worker_until_synced(
    adapters: CountingAdapters, settings: Settings, account: Account
) -> SyncState:
    """Run a worker until the account's sync succeeded (or 60 s passed); its SyncState."""
    stop = asyncio.Event()
    runner = scheduled_sync(adapters.open_adapter, InProcessBus(), default_interval_seconds=60)
    worker = asyncio.create_task(run_jobs(settings, runner, stop_event=stop, idle_seconds=0.05))
    try:
        async with asyncio.timeout(60):
            while True:
                if await SyncState.exists(account_id=account.id, last_success_at__isnull=False):
                    break
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker
    return await SyncState.get(account_id=account.id)


async def test_a_retry_after_is_honoured_and_never_more_than_4_requests_run_at_once(
    db: Settings, graph: ServedEmulator, adapters: CountingAdapters
) -> None:
    mailbox, account = await connected(graph)
    emulator, oid = graph.emulator, mailbox.oid
    folders = ["inbox", "archive", "sentitems"]
    folders += [emulator.create_folder(oid, f"Folder {n}").id for n in range(5)]
    for n in range(80):
        emulator.add_message(oid, folder=folders[n % len(folders)], subject=f"m{n}")
    await park_other_accounts(account.id)
    start = datetime.now(UTC).replace(microsecond=0)
    clock.freeze(start)
    emulator.inject_fault(429, count=1, retry_after=30, user_ref=oid)

    outcome = await sync(adapters, account)

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "RATE_LIMITED")
    assert outcome.next_run_at == start + timedelta(seconds=30)
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.consecutive_failures, state.next_run_at) == (
        SyncPhase.BACKOFF,
        1,
        start + timedelta(seconds=30),
    )

    # A worker running meanwhile leaves the mailbox alone until the time Graph gave.
    seen = len(mailbox_requests(graph, oid))
    await run_worker_for(adapters, db, 0.5)
    assert len(mailbox_requests(graph, oid)) == seen

    # Slow answers make the adapter's requests pile up: at most 4 may be in flight.
    emulator.set_latency(0.15)
    try:
        clock.travel(timedelta(seconds=31))
        emulator_clock.advance(31)
        state = await run_worker_until_synced(adapters, db, account)
    finally:
        emulator.set_latency(0.0)
    assert (state.phase, state.consecutive_failures) == (SyncPhase.INCREMENTAL, 0)
    await assert_cache_equals_mailbox(graph, oid, account)
    requests = mailbox_requests(graph, oid)
    # Requests already on their way when the 429 came (at most 3 beside it) are refused too;
    # none was sent after it until the Retry-After had passed.
    refused_run, later = requests[:seen], requests[seen:]
    assert len([r for r in refused_run if r["early"]]) <= 3
    assert [r["status"] for r in refused_run if not r["early"]].count(429) == 1
    assert not [r for r in later if r["early"] or r["status"] == 429]
    assert emulator.stats()["maxConcurrent"][oid] == 4


async def test_a_revoked_grant_stops_the_account_until_it_is_reconnected(
    db: Settings, graph: ServedEmulator, adapters: CountingAdapters
) -> None:
    mailbox, account = await connected(graph)
    emulator, oid = graph.emulator, mailbox.oid
    emulator.add_message(oid, subject="before")
    await sync(adapters, account)
    await park_other_accounts(account.id)
    emulator.revoke_grants(oid)
    emulator.expire_access_tokens(oid)  # the sealed access token still looks fresh to us
    emulator.add_message(oid, subject="after")

    outcome = await sync(adapters, account)

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.NEEDS_REAUTH, "INVALID_GRANT")
    account = await Account.get(id=account.id)
    assert (account.status, account.status_reason) == (AccountStatus.NEEDS_REAUTH, "INVALID_GRANT")
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.next_run_at) == (SyncPhase.STOPPED, None)
    entries = await ChangeLogEntry.filter(account_id=account.id, kind=ChangeKind.ACCOUNT_STATUS)
    assert [entry.detail for entry in entries] == [
        {"status": "needs_reauth", "reason": "INVALID_GRANT"}
    ]
    seen, built = len(mailbox_requests(graph, oid)), adapters.built
    await run_worker_for(adapters, db, 0.5)
    assert (len(mailbox_requests(graph, oid)), adapters.built) == (seen, built)
