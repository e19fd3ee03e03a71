"""The engine with the real Gmail adapter against the emulated Gmail over HTTP.

The cache must equal the mailbox (membership, threads, labels, flags) after a full sync of a
corpus, after random sequences of changes, after an expired history (exactly one full resync),
and it must back off on quota errors and stop for good on a revoked grant.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from app import clock
from app.events import AccountChanged, InProcessBus
from app.models import Account, ChangeLogEntry, Message, MessageBody, SyncState
from app.settings import Settings
from app.types import AccountStatus, ChangeKind, SyncPhase
from emulators.corpus import make_message
from emulators.gmail_store import Mailbox
from sync.engine import OutcomeKind, SyncOutcome, scheduled_sync, sync_account
from sync.jobs import run_jobs
from sync.providers.gmail import GmailAdapter
from tests.factories import make_account, make_owner
from tests.sync.harness import (
    EmulatedGmail,
    RemoteTokens,
    cache_snapshot,
    cache_truth,
    emulator_process,
    mailbox_truth,
    park_other_accounts,
    remote_mailbox_truth,
    thread_counts,
)

MODIFIABLE = ("STARRED", "UNREAD", "IMPORTANT", "INBOX", "CATEGORY_PERSONAL")


async def account_for(mailbox: Mailbox, **overrides: object) -> Account:
    owner = await make_owner()
    return await make_account(owner.owner, address=mailbox.email, **overrides)


async def sync(gmail: EmulatedGmail, account: Account) -> SyncOutcome:
    return await sync_account(account.id, gmail.adapter_factory, InProcessBus())


async def assert_cache_equals_mailbox(account: Account, mailbox: Mailbox) -> None:
    await assert_cache_equals(account, mailbox_truth(mailbox))


async def assert_cache_equals(account: Account, truth: dict[str, dict[str, object]]) -> None:
    """The cache holds exactly ``truth``'s messages, threads, labels and flags, its thread
    counts agree with its messages, and each message is linked to its folders."""
    snapshot = await cache_snapshot(account.id)
    assert cache_truth(snapshot) == truth
    stored = {
        thread: (row["message_count"], row["unread_count"])
        for thread, row in snapshot.threads.items()
    }
    assert stored == thread_counts(snapshot)
    for pid, message in snapshot.messages.items():
        # Every label that is a folder is linked; UNREAD is a flag only.
        expected = sorted(set(message["label_ids"]) & set(snapshot.folders))
        assert message["labels"] == expected, pid


async def test_a_corpus_mailbox_syncs_completely(db: Settings) -> None:
    # The emulator in its own process, as Google is: the sync does not share its interpreter.
    user = "corpus@example.com"
    with emulator_process(user, messages=2000, seed=11) as base_url:
        account = await make_account((await make_owner()).owner, address=user)

        async def adapter_factory(account: Account) -> GmailAdapter:
            return GmailAdapter(base_url, RemoteTokens(base_url, account.address))

        outcome = await sync_account(account.id, adapter_factory, InProcessBus())

        assert (outcome.kind, outcome.added, outcome.full_syncs) == (OutcomeKind.SYNCED, 2000, 1)
        await assert_cache_equals(account, await remote_mailbox_truth(base_url, user))
        again = await sync_account(account.id, adapter_factory, InProcessBus())

    assert (again.kind, again.added, again.changed, again.full_syncs) == (
        OutcomeKind.SYNCED,
        0,
        0,
        0,
    )
    snapshot = await cache_snapshot(account.id)
    assert {"INBOX", "SENT", "TRASH", "CATEGORY_PERSONAL"} <= set(snapshot.folders)
    assert "UNREAD" not in snapshot.folders
    assert any(row["message_count"] > 1 for row in snapshot.threads.values())
    assert await MessageBody.filter(message__account_id=account.id).count() == 2000
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.full_sync_page_token, state.consecutive_failures) == (
        SyncPhase.INCREMENTAL,
        None,
        0,
    )


class RandomChanges:
    """What a user and their correspondents do to a mailbox, drawn from a seeded generator."""

    def __init__(self, mailbox: Mailbox, rng: random.Random) -> None:
        self.mailbox = mailbox
        self.rng = rng
        self.labels = [mailbox.create_label("Work").id]

    def ids(self) -> list[str]:
        return sorted(mailbox_truth(self.mailbox))

    def deliver(self) -> str:
        existing = self.ids()
        parent = None
        if existing and self.rng.random() < 0.4:
            parent = self.mailbox.get(self.rng.choice(existing)).raw
        return self.mailbox.deliver(make_message(self.rng, thread_of=parent)).id

    def apply(self, count: int) -> None:
        for _ in range(count):
            existing = self.ids()
            kind = self.rng.choice(
                ["deliver", "deliver", "relabel", "relabel", "relabel", "trash", "delete", "flash"]
            )
            if kind == "deliver" or not existing:
                self.deliver()
            elif kind == "relabel":
                label = self.rng.choice([*MODIFIABLE, *self.labels])
                message = self.mailbox.get(self.rng.choice(existing))
                if label in message.label_ids:
                    self.mailbox.modify(message.id, remove=[label])
                else:
                    self.mailbox.modify(message.id, add=[label])
            elif kind == "trash":
                self.mailbox.trash(self.rng.choice(existing))
            elif kind == "delete":
                self.mailbox.delete(self.rng.choice(existing))
            else:  # added and deleted between two syncs: must never show up
                self.mailbox.delete(self.deliver())
        if self.rng.random() < 0.3:
            # A label created after the folders were listed, used at once.
            label = self.mailbox.create_label(f"Project {len(self.labels)}").id
            self.labels.append(label)
            self.mailbox.modify(self.rng.choice(self.ids()), add=[label])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_changes_end_with_the_cache_equal_to_the_mailbox(
    db: Settings, gmail: EmulatedGmail, seed: int
) -> None:
    rng = random.Random(seed)
    mailbox = gmail.new_user(messages=120, seed=seed)
    changes = RandomChanges(mailbox, rng)
    account = await account_for(mailbox)
    assert (await sync(gmail, account)).kind == OutcomeKind.SYNCED
    await assert_cache_equals_mailbox(account, mailbox)

    for _ in range(6):
        changes.apply(rng.randint(5, 40))
        outcome = await sync(gmail, account)
        assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 0)
        await assert_cache_equals_mailbox(account, mailbox)

    changed = await ChangeLogEntry.filter(account_id=account.id).count()
    assert changed > 0
    assert await Message.filter(account_id=account.id).count() == len(mailbox_truth(mailbox))


async def test_an_expired_history_means_exactly_one_full_resync(
    db: Settings, gmail: EmulatedGmail
) -> None:
    rng = random.Random(5)
    mailbox = gmail.new_user(messages=300, seed=5)
    account = await account_for(mailbox)
    await sync(gmail, account)
    ids_before = dict(await Message.filter(account_id=account.id).values_list("provider_id", "id"))

    deleted = rng.sample(sorted(ids_before), 25)
    for message_id in deleted:
        mailbox.delete(message_id)
    for message_id in rng.sample(sorted(set(ids_before) - set(deleted)), 10):
        mailbox.modify(message_id, add=["STARRED"])
    delivered = [mailbox.deliver(make_message(rng)).id for _ in range(10)]
    mailbox.expire_history()
    profile_calls = gmail.emulator.stats.calls("getProfile")
    history_calls = gmail.emulator.stats.calls("history.list")

    outcome = await sync(gmail, account)

    assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 1)
    assert (outcome.added, outcome.deleted) == (10, 25)
    assert gmail.emulator.stats.calls("getProfile") == profile_calls + 1
    # The expired cursor, then the fresh cursor's (empty) history: no retry loop.
    assert gmail.emulator.stats.calls("history.list") == history_calls + 2
    await assert_cache_equals_mailbox(account, mailbox)
    ids_after = dict(await Message.filter(account_id=account.id).values_list("provider_id", "id"))
    assert not set(deleted) & set(ids_after)  # deleted mail stays deleted
    assert set(delivered) <= set(ids_after)
    # Messages that survived kept their cache ids: upserted, never duplicated.
    assert all(ids_after[pid] == ids_before[pid] for pid in set(ids_before) - set(deleted))

    mailbox.deliver(make_message(rng))
    later = await sync(gmail, account)
    assert (later.added, later.full_syncs) == (1, 0)


async def run_worker_for(gmail: EmulatedGmail, settings: Settings, seconds: float) -> None:
    stop = asyncio.Event()
    runner = scheduled_sync(gmail.adapter_factory, InProcessBus(), default_interval_seconds=60)
    worker = asyncio.create_task(run_jobs(settings, runner, stop_event=stop, idle_seconds=0.05))
    await asyncio.sleep(seconds)
    stop.set()
    await worker


@pytest.mark.parametrize("kind", ["429", "403_rate_limit"])
async def test_a_retry_after_pushes_the_next_run_exactly_that_far(
    db: Settings, gmail: EmulatedGmail, kind: str
) -> None:
    mailbox = gmail.new_user(messages=30, seed=2)
    account = await account_for(mailbox)
    await park_other_accounts(account.id)
    start = datetime.now(UTC).replace(microsecond=0)
    clock.freeze(start)
    gmail.emulator.faults.inject(kind, method="messages.list", user=mailbox.email, retry_after=30)

    outcome = await sync(gmail, account)

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "RATE_LIMITED")
    assert outcome.next_run_at == start + timedelta(seconds=30)
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.consecutive_failures, state.last_error_code) == (
        SyncPhase.BACKOFF,
        1,
        "RATE_LIMITED",
    )
    assert state.next_run_at == start + timedelta(seconds=30)

    # A worker running meanwhile leaves the account alone: no request until the time comes.
    units = gmail.units(mailbox.email)
    await run_worker_for(gmail, db, 0.5)
    assert gmail.units(mailbox.email) == units

    clock.travel(timedelta(seconds=31))
    await run_worker_for(gmail, db, 0.5)
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.consecutive_failures) == (SyncPhase.INCREMENTAL, 0)
    await assert_cache_equals_mailbox(account, mailbox)


async def test_quota_errors_without_retry_after_back_off_with_jitter(
    db: Settings, gmail: EmulatedGmail
) -> None:
    mailbox = gmail.new_user(messages=5, seed=3)
    account = await account_for(mailbox)
    start = datetime.now(UTC)
    clock.freeze(start)
    delays = []
    for _ in range(4):
        gmail.emulator.faults.inject("403_user_rate_limit", method="getProfile", user=mailbox.email)
        outcome = await sync(gmail, account)
        assert outcome.kind == OutcomeKind.BACKING_OFF
        assert outcome.next_run_at is not None
        delays.append((outcome.next_run_at - start).total_seconds())
    # Full jitter within a ceiling that doubles (5, 10, 20, 40 s), never under a second.
    for failures, delay in enumerate(delays):
        assert 1.0 <= delay <= 5.0 * 2**failures
    assert (await SyncState.get(account_id=account.id)).consecutive_failures == 4


async def test_an_exhausted_quota_waits_for_the_time_gmail_names(
    db: Settings, gmail: EmulatedGmail
) -> None:
    mailbox = gmail.new_user(messages=200, seed=4)
    account = await account_for(mailbox)
    quota = gmail.emulator.quota
    quota.units_per_minute = 400  # a metadata list and about 80 messages.get
    try:
        before = datetime.now(UTC)
        outcome = await sync(gmail, account)
    finally:
        quota.units_per_minute = 10**9
    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "RATE_LIMITED")
    assert outcome.next_run_at is not None
    # Gmail says when the minute's units free up: well after a second, at most a minute.
    wait = (outcome.next_run_at - before).total_seconds()
    assert 30 < wait <= 61


async def test_a_revoked_grant_stops_the_account_until_it_is_reconnected(
    db: Settings, gmail: EmulatedGmail
) -> None:
    mailbox = gmail.new_user(messages=10, seed=6)
    account = await account_for(mailbox)
    await sync(gmail, account)
    await park_other_accounts(account.id)
    gmail.emulator.identity.revoke(mailbox.email)
    mailbox.deliver(make_message(random.Random(1)))
    bus = InProcessBus()

    async with bus.subscribe() as queue:
        outcome = await sync_account(account.id, gmail.adapter_factory, bus)
        event = queue.get_nowait()

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.NEEDS_REAUTH, "AUTH_REVOKED")
    account = await Account.get(id=account.id)
    assert (account.status, account.status_reason) == (AccountStatus.NEEDS_REAUTH, "AUTH_REVOKED")
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.next_run_at) == (SyncPhase.STOPPED, None)
    entries = await ChangeLogEntry.filter(account_id=account.id, kind=ChangeKind.ACCOUNT_STATUS)
    assert [entry.detail for entry in entries] == [
        {"status": "needs_reauth", "reason": "AUTH_REVOKED"}
    ]
    assert event == AccountChanged(account.owner_id, account.id, entries[0].id)
    assert gmail.tokens[mailbox.email].refreshes == 1

    units, adapters = gmail.units(mailbox.email), gmail.adapters_built
    await run_worker_for(gmail, db, 0.5)
    assert (gmail.units(mailbox.email), gmail.adapters_built) == (units, adapters)
