"""sync.engine's state machine with a scripted adapter: resume, one resync, backoff, re-auth."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import clock
from app.events import InProcessBus
from app.models import Account, ChangeLogEntry, Message, MessageLabel, SyncState
from app.services.errors import ServiceError
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId, AccountStatus, ChangeKind, FolderRole, SyncPhase
from sync.apply import FullSyncPass, apply_batch
from sync.engine import Backoff, OutcomeKind, SyncOutcome, sync_account
from sync.providers.errors import (
    AuthRevoked,
    CursorExpired,
    ProviderError,
    RateLimited,
    TransientError,
)
from sync.providers.records import (
    AttachmentRecord,
    ChangeBatch,
    FolderRecord,
    MessageContent,
    MessageRecord,
)
from tests.factories import make_account, make_owner

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FOLDERS = (FolderRecord("INBOX", "Inbox", FolderRole.INBOX),)
Answer = ChangeBatch | ProviderError | Exception


def record(provider_id: str, *labels: str) -> MessageRecord:
    return MessageRecord(
        provider_id=provider_id,
        thread_provider_id=f"thread-{provider_id}",
        subject=provider_id,
        date=datetime(2026, 1, 1, tzinfo=UTC),
        label_ids=labels or ("INBOX",),
    )


def page(*ids: str, next_token: str | None = None, cursor: str | None = None) -> ChangeBatch:
    return ChangeBatch(
        upserts=[record(pid) for pid in ids],
        folders=FOLDERS,
        next_page_token=next_token,
        cursor=cursor,
        complete=next_token is None,
    )


@dataclass
class ScriptedAdapter:
    """A ``MailboxAdapter`` answering from scripts, recording every call."""

    pages: dict[str | None, list[Answer]] = field(default_factory=dict)
    changes: list[Answer] = field(default_factory=list)
    folders: list[FolderRecord] = field(default_factory=lambda: list(FOLDERS))
    calls: list[tuple[str, Any]] = field(default_factory=list)
    closed: int = 0

    async def list_folders(self) -> list[FolderRecord]:
        self.calls.append(("list_folders", None))
        return self.folders

    async def full_sync_page(self, page_token: str | None, *, with_content: bool) -> ChangeBatch:
        self.calls.append(("full_sync_page", page_token))
        return _answer(self.pages[page_token].pop(0))

    async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
        self.calls.append(("changes_since", cursor))
        return _answer(self.changes.pop(0))

    async def fetch_content(self, provider_id: str) -> MessageContent:
        raise NotImplementedError

    async def fetch_attachment(self, provider_id: str, attachment: AttachmentRecord) -> bytes:
        raise NotImplementedError

    async def aclose(self) -> None:
        self.closed += 1

    def called(self, method: str) -> list[Any]:
        return [argument for name, argument in self.calls if name == method]


def _answer(answer: Answer) -> ChangeBatch:
    if isinstance(answer, Exception):
        raise answer
    return answer


async def new_account(**overrides: Any) -> Account:
    owner = await make_owner()
    return await make_account(owner.owner, sync_interval_seconds=300, **overrides)


async def run(account: Account, adapter: ScriptedAdapter, **options: Any) -> SyncOutcome:
    async def factory(given: Account) -> ScriptedAdapter:
        assert given.id == account.id
        return adapter

    return await sync_account(account.id, factory, InProcessBus(), **options)


async def cached_ids(account: Account) -> set[str]:
    return set(await Message.filter(account_id=account.id).values_list("provider_id", flat=True))


@pytest.fixture(autouse=True)
def _frozen_clock() -> None:
    clock.freeze(NOW)


async def test_a_first_run_does_a_full_sync_then_catches_up(db: Settings) -> None:
    account = await new_account()
    adapter = ScriptedAdapter(
        pages={None: [page("a", "b", next_token="t1")], "t1": [page("c", cursor="10")]},
        changes=[ChangeBatch(upserts=[record("d")], cursor="11")],
    )

    outcome = await run(account, adapter)

    assert (outcome.kind, outcome.added, outcome.full_syncs) == (OutcomeKind.SYNCED, 4, 1)
    assert outcome.next_run_at == NOW + timedelta(seconds=300)
    assert adapter.calls == [
        ("full_sync_page", None),
        ("full_sync_page", "t1"),
        ("changes_since", "10"),
    ]
    assert adapter.closed == 1
    assert await cached_ids(account) == {"a", "b", "c", "d"}
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.phase, state.last_success_at, state.next_run_at) == (
        "11",
        SyncPhase.INCREMENTAL,
        NOW,
        NOW + timedelta(seconds=300),
    )


async def test_an_incomplete_batch_is_followed_at_once(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(
        changes=[
            ChangeBatch(upserts=[record("a")], cursor="6", complete=False),
            ChangeBatch(upserts=[record("b")], cursor="7"),
        ]
    )
    outcome = await run(account, adapter)
    assert (outcome.kind, outcome.added) == (OutcomeKind.SYNCED, 2)
    assert adapter.called("changes_since") == ["5", "6"]


async def test_a_full_sync_that_failed_midway_resumes_its_pass(db: Settings) -> None:
    account = await new_account()
    bus = InProcessBus()
    await apply_batch(account.id, ChangeBatch(upserts=[record("gone")], cursor="1"), events=bus)
    await SyncState.filter(account_id=account.id).update(cursor=None)
    adapter = ScriptedAdapter(
        pages={
            None: [page("a", next_token="t1")],
            "t1": [TransientError("503"), page("b", cursor="20")],
        },
        changes=[ChangeBatch(cursor="21")],
    )

    failed = await run(account, adapter)
    assert (failed.kind, failed.error_code) == (OutcomeKind.BACKING_OFF, "TRANSIENT")
    state = await SyncState.get(account_id=account.id)
    assert state.full_sync_page_token is not None
    resumed_pass = FullSyncPass.resume(state.full_sync_page_token)
    assert resumed_pass is not None
    assert resumed_pass[1] == "t1"

    clock.travel(timedelta(minutes=5))
    outcome = await run(account, adapter)

    assert (outcome.kind, outcome.deleted) == (OutcomeKind.SYNCED, 1)
    assert adapter.called("full_sync_page") == [None, "t1", "t1"]  # the pass was not restarted
    # "gone" was cached before the pass began and listed by neither page.
    assert await cached_ids(account) == {"a", "b"}


async def test_an_expired_cursor_means_one_full_resync(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(
        pages={None: [page("a", cursor="30")]},
        changes=[CursorExpired("404"), ChangeBatch(cursor="31")],
    )
    outcome = await run(account, adapter)
    assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 1)
    assert adapter.called("changes_since") == ["5", "30"]
    assert (await SyncState.get(account_id=account.id)).cursor == "31"


async def test_a_fresh_cursor_that_is_dead_at_once_stops_the_run(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(
        pages={None: [page("a", cursor="30")]},
        changes=[CursorExpired("404"), CursorExpired("404 again")],
    )

    outcome = await run(account, adapter)

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "CURSOR_EXPIRED_AGAIN")
    assert adapter.called("full_sync_page") == [None]  # exactly one resync, no loop
    assert adapter.called("changes_since") == ["5", "30"]
    assert outcome.next_run_at is not None
    assert outcome.next_run_at > NOW


async def test_a_rejected_page_token_restarts_the_full_sync_once(db: Settings) -> None:
    account = await new_account()
    stale = FullSyncPass(NOW - timedelta(days=1)).page_token("old")
    await SyncState.create(account_id=account.id, full_sync_page_token=stale)
    adapter = ScriptedAdapter(
        pages={"old": [CursorExpired("bad token")], None: [page("a", cursor="40")]},
        changes=[ChangeBatch(cursor="41")],
    )
    outcome = await run(account, adapter)
    assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 2)
    assert adapter.called("full_sync_page") == ["old", None]


async def test_a_retry_after_is_honoured_exactly_and_success_resets(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(
        changes=[RateLimited("429", retry_after=12.5), ChangeBatch(cursor="6")]
    )

    limited = await run(account, adapter)

    assert limited.next_run_at == NOW + timedelta(seconds=12.5)
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.phase, state.consecutive_failures, state.last_error_code) == (
        "5",
        SyncPhase.BACKOFF,
        1,
        "RATE_LIMITED",
    )
    assert state.last_error_at == NOW

    recovered = await run(account, adapter)
    assert recovered.kind == OutcomeKind.SYNCED
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.consecutive_failures, state.last_error_code) == ("6", 0, None)


@pytest.mark.parametrize("failures", [0, 1, 5, 40])
def test_backoff_is_full_jitter_under_a_doubling_ceiling(failures: int) -> None:
    backoff = Backoff(base_seconds=5, cap_seconds=900, floor_seconds=1)
    rng = random.Random(failures)
    delays = [backoff.delay(failures, rng) for _ in range(200)]
    ceiling = min(900, 5 * 2**failures)
    assert all(1 <= delay <= ceiling for delay in delays)
    assert max(delays) > ceiling / 2  # spread over the range, not pinned to one end
    assert backoff.after(RateLimited(retry_after=0), failures, rng) == 1  # never a hot loop


async def test_transient_failures_back_off_longer_each_time(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(changes=[TransientError("500") for _ in range(6)])
    ceilings = []
    for _ in range(6):
        outcome = await run(account, adapter, rng=_MaxRandom())
        assert outcome.next_run_at is not None
        ceilings.append((outcome.next_run_at - NOW).total_seconds())
    assert ceilings == [5, 10, 20, 40, 80, 160]


class _MaxRandom(random.Random):
    """Draws the top of every range: the backoff's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_a_revoked_grant_marks_the_account_once(db: Settings) -> None:
    account = await new_account()

    async def revoked(given: Account) -> ScriptedAdapter:
        raise AuthRevoked("invalid_grant")

    outcome = await sync_account(account.id, revoked, InProcessBus())

    assert outcome.kind == OutcomeKind.NEEDS_REAUTH
    stored = await Account.get(id=account.id)
    assert (stored.status, stored.status_reason) == (AccountStatus.NEEDS_REAUTH, "AUTH_REVOKED")
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.next_run_at) == (SyncPhase.STOPPED, None)
    assert (
        await ChangeLogEntry.filter(account_id=account.id, kind=ChangeKind.ACCOUNT_STATUS).count()
        == 1
    )


async def test_a_revocation_the_token_source_recorded_is_not_recorded_twice(
    db: Settings,
) -> None:
    account = await new_account()

    async def marks_then_raises(given: Account) -> ScriptedAdapter:
        # What the production token source does before raising AuthRevoked.
        await Account.filter(id=given.id).update(
            status=AccountStatus.NEEDS_REAUTH, status_reason="INVALID_GRANT"
        )
        await ChangeLogEntry.create(account_id=given.id, kind=ChangeKind.ACCOUNT_STATUS)
        raise AuthRevoked("invalid_grant")

    outcome = await sync_account(account.id, marks_then_raises, InProcessBus())

    assert outcome.kind == OutcomeKind.NEEDS_REAUTH
    assert (await Account.get(id=account.id)).status_reason == "INVALID_GRANT"
    assert (
        await ChangeLogEntry.filter(account_id=account.id, kind=ChangeKind.ACCOUNT_STATUS).count()
        == 1
    )
    assert (await SyncState.get(account_id=account.id)).phase == SyncPhase.STOPPED


@pytest.mark.parametrize("status", [AccountStatus.NEEDS_REAUTH, AccountStatus.DISABLED])
async def test_an_inactive_account_is_not_synced(db: Settings, status: AccountStatus) -> None:
    account = await new_account(status=status)
    adapter = ScriptedAdapter()
    assert (await run(account, adapter)).kind == OutcomeKind.SKIPPED
    assert adapter.calls == []
    assert adapter.closed == 0


async def test_a_terminated_owner_is_not_synced(db: Settings) -> None:
    account = await new_account()
    await account.fetch_related("owner")
    account.owner.terminated_at = NOW
    await account.owner.save()
    adapter = ScriptedAdapter()
    assert (await run(account, adapter)).kind == OutcomeKind.SKIPPED
    assert adapter.calls == []


async def test_a_run_without_the_lease_writes_nothing(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5", lease_owner="someone-else")
    adapter = ScriptedAdapter(changes=[ChangeBatch(upserts=[record("a")], cursor="6")])
    outcome = await run(account, adapter, lease_owner="me")
    assert outcome.kind == OutcomeKind.SKIPPED
    assert await cached_ids(account) == set()
    state = await SyncState.get(account_id=account.id)
    assert (state.cursor, state.next_run_at) == ("5", None)


async def test_a_label_created_since_the_folder_listing_gets_its_folder(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(
        pages={},
        changes=[
            ChangeBatch(upserts=[record("a", "INBOX", "UNREAD", "Label_9")], cursor="6"),
            ChangeBatch(upserts=[record("b", "INBOX", "UNREAD")], cursor="7"),
        ],
        folders=[*FOLDERS, FolderRecord("Label_9", "Receipts")],
    )
    await apply_batch(account.id, ChangeBatch(folders=FOLDERS), events=InProcessBus())

    await run(account, adapter)

    links = await MessageLabel.filter(message__account_id=account.id).values_list(
        "folder__provider_id", flat=True
    )
    assert sorted(links) == ["INBOX", "Label_9"]
    assert len(adapter.called("list_folders")) == 1

    await run(account, adapter)  # UNREAD alone: known not to be a folder, no new listing
    assert len(adapter.called("list_folders")) == 1


async def test_an_unexpected_failure_is_recorded_and_backed_off(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5")
    adapter = ScriptedAdapter(changes=[ValueError("a bug")])
    outcome = await run(account, adapter)
    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "INTERNAL_ERROR")
    assert adapter.closed == 1


async def test_a_failing_look_ahead_page_leaves_the_applied_page_stored(db: Settings) -> None:
    account = await new_account()
    adapter = ScriptedAdapter(
        pages={None: [page("a", next_token="t1")], "t1": [TransientError("reset")]},
    )
    outcome = await run(account, adapter)
    assert outcome.kind == OutcomeKind.BACKING_OFF
    assert await cached_ids(account) == {"a"}
    state = await SyncState.get(account_id=account.id)
    stored: Sequence[Any] | None = (
        FullSyncPass.resume(state.full_sync_page_token) if state.full_sync_page_token else None
    )
    assert stored is not None
    assert stored[1] == "t1"


async def test_an_adapter_the_server_cannot_build_is_backed_off_with_its_code(
    db: Settings,
) -> None:
    account = await new_account()

    async def not_configured(given: Account) -> ScriptedAdapter:
        raise ServiceError("no Google client configured", code="NOT_CONFIGURED")

    outcome = await sync_account(account.id, not_configured, InProcessBus())
    assert (outcome.kind, outcome.error_code) == (OutcomeKind.BACKING_OFF, "NOT_CONFIGURED")
    assert (await SyncState.get(account_id=account.id)).last_error_code == "NOT_CONFIGURED"


async def test_a_sync_now_during_a_run_keeps_the_account_due(db: Settings) -> None:
    account = await new_account()
    await SyncState.create(account_id=account.id, cursor="5", next_run_at=NOW)

    class PushedDuringTheRun(ScriptedAdapter):
        async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
            batch = await super().changes_since(cursor, with_content=with_content)
            clock.travel(timedelta(seconds=2))
            await request_sync_now(AccountId(account.id))  # new mail pushed meanwhile
            return batch

    outcome = await run(account, PushedDuringTheRun(changes=[ChangeBatch(cursor="6")]))

    assert outcome.kind == OutcomeKind.SYNCED
    assert outcome.next_run_at == NOW + timedelta(seconds=2)  # not a whole interval later
    state = await SyncState.get(account_id=account.id)
    assert (state.next_run_at, state.last_success_at) == (NOW + timedelta(seconds=2),) * 2

    quiet = await run(account, ScriptedAdapter(changes=[ChangeBatch(cursor="7")]))
    assert quiet.next_run_at == NOW + timedelta(seconds=2 + 300)
