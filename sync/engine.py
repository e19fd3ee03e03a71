"""The sync engine: one run of one account's sync state machine, from where SyncState says.

::

                 SyncState.cursor is None?
                  | yes                                  | no
                  v                                      v
    +-----> FULL SYNC (phase INITIAL) ------------> INCREMENTAL (phase INCREMENTAL)
    |       full_sync_page(token) page after page   changes_since(cursor) until complete
    |       (resumes from full_sync_page_token;     (each batch stored with its cursor)
    |       each page stored with the next token;          |
    |       the last page stores the cursor and            | CursorExpired
    |       removes what the pass did not list)            v
    |                                               fresh full sync already run in this
    +------------ no: drop cursor and page token <-- run? yes: stop, CURSOR_EXPIRED_AGAIN
                                                         (backoff, never a loop)

    caught up ............ phase INCREMENTAL, next_run_at = now + sync interval
    RateLimited .......... phase BACKOFF, next_run_at = now + retry_after (exactly), else
    TransientError,        exponential backoff with full jitter on consecutive_failures
    AuthExpired, other     (``Backoff``); the cursor stays, the same call is repeated later
    AuthRevoked .......... Account NEEDS_REAUTH (+ change-log row and event), phase STOPPED,
                           next_run_at NULL: nothing runs until a reconnect makes it ACTIVE

Where state lives (what survives a restart or a killed worker): only the database. The
``SyncState`` row holds the cursor, the full-sync page token (with the mark of its pass, see
``sync.apply.FullSyncPass``), phase, next_run_at, consecutive_failures and last error; the cursor
and page token are written in the same transaction as the rows they cover (``sync.apply``), so a
run that dies anywhere resumes from the last batch it committed. ``Account.status`` says whether
the account may run at all. In memory there is only a per-process memo of label ids the provider
says are no folders (``_NOT_FOLDERS``); losing it costs one folder listing.

Adapters come from an injected ``AdapterFactory`` (the production one builds them from the
account's sealed credentials; tests point one at an emulator). An optional ``AfterSync`` hook
runs with the adapter once a run caught up (``sync.push.PushRegistrar`` keeps the account's push
registration current there). The engine never sleeps: a
failed run returns with ``next_run_at`` pushed out and the worker (``sync.jobs``) waits. It
never logs message content or tokens; errors are reported by their codes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app import clock
from app.events import AccountChanged, EventBus
from app.models import Account, ChangeLogEntry, SyncState
from app.services.errors import ServiceError
from app.types import AccountStatus, ChangeKind, SyncPhase
from sync.apply import (
    AccountGone,
    FullSyncPass,
    LeaseLost,
    apply_batch,
    folders_unknown_to_cache,
)
from sync.providers.adapter import MailboxAdapter
from sync.providers.errors import AuthRevoked, CursorExpired, ProviderError, RateLimited
from sync.providers.records import ChangeBatch

logger = logging.getLogger("inbox_api.sync")

AdapterFactory = Callable[[Account], Awaitable[MailboxAdapter]]
"""``await factory(account)`` -> a ready adapter for that account; the engine closes it.

The seam between sync and credentials: production passes the connect flow's factory (it opens
the account's sealed tokens and builds the provider's adapter; it raises ``AuthRevoked`` when
there is no usable grant); tests pass one that builds a ``GmailAdapter`` against the emulator.
"""

AfterSync = Callable[[Account, MailboxAdapter], Awaitable[None]]
"""``await after_sync(account, adapter)`` once a run caught up, before the adapter closes; it
must not raise (a failure there is no failure of the sync)."""

# Label ids a provider lists as no folder (Gmail's UNREAD), per account: without this memo a
# batch with unread mail would list the folders on every run to learn it again.
_NOT_FOLDERS: dict[int, frozenset[str]] = {}
# The code of a bug or an unexpected failure (logged with its traceback); retried with backoff.
INTERNAL_ERROR = "INTERNAL_ERROR"
_JITTER = random.Random()  # noqa: S311 (spreading retries needs no cryptographic randomness)


class OutcomeKind(StrEnum):
    SYNCED = "synced"  # caught up; the next poll is scheduled
    BACKING_OFF = "backing_off"  # a failure to retry at next_run_at
    NEEDS_REAUTH = "needs_reauth"  # the grant is gone; stopped until a reconnect
    SKIPPED = "skipped"  # account gone, inactive, or leased by another worker: nothing written


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """How one run of one account ended."""

    account_id: int
    kind: OutcomeKind
    added: int = 0
    changed: int = 0
    deleted: int = 0
    full_syncs: int = 0
    error_code: str | None = None
    next_run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: a uniform wait in [0, min(cap, base * 2**n)],
    never under ``floor_seconds`` so that a run can never spin, whatever the draw."""

    base_seconds: float = 5.0
    cap_seconds: float = 15 * 60.0
    floor_seconds: float = 1.0

    def delay(self, failures_before: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(failures_before, 32))
        return max(self.floor_seconds, rng.uniform(0.0, ceiling))

    def after(self, error: ProviderError, failures_before: int, rng: random.Random) -> float:
        """Seconds to wait after ``error``: the provider's Retry-After when it gave one."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return max(self.floor_seconds, error.retry_after)
        return self.delay(failures_before, rng)


class CursorExpiredAgain(ProviderError):
    """The cursor of a full sync this very run made is already dead: stop, do not loop."""

    code = "CURSOR_EXPIRED_AGAIN"


async def sync_account(
    account_id: int,
    adapter_factory: AdapterFactory,
    events: EventBus,
    *,
    default_interval_seconds: float = 60.0,
    lease_owner: str | None = None,
    backoff: Backoff = Backoff(),
    rng: random.Random | None = None,
    after_sync: AfterSync | None = None,
) -> SyncOutcome:
    """Run the state machine once for ``account_id``: catch up, or record why not and when to
    try again. ``lease_owner`` fences every write to the worker holding the lease."""
    account = await Account.filter(id=account_id, owner__terminated_at__isnull=True).first()
    if account is None or account.status != AccountStatus.ACTIVE:
        return SyncOutcome(account_id, OutcomeKind.SKIPPED)
    state, _ = await SyncState.get_or_create(account_id=account_id)
    run = _Run(account, state, events, lease_owner)
    interval = account.sync_interval_seconds or default_interval_seconds
    try:
        adapter = await adapter_factory(account)
        try:
            await run.catch_up(adapter)
            if after_sync is not None:
                await after_sync(account, adapter)
        finally:
            await adapter.aclose()
    except (AccountGone, LeaseLost):
        return run.outcome(OutcomeKind.SKIPPED)
    except AuthRevoked as error:
        return await run.needs_reauth(error)
    except ProviderError as error:
        delay = backoff.after(error, state.consecutive_failures, rng or _JITTER)
        return await run.back_off(error.code, delay)
    except ServiceError as error:
        # The adapter factory's expected failures (a provider the server is not configured
        # for, say): retried with backoff in case an operator fixes it.
        delay = backoff.delay(state.consecutive_failures, rng or _JITTER)
        return await run.back_off(error.code, delay)
    except Exception:
        logger.exception("sync of account %s failed unexpectedly", account_id)
        delay = backoff.delay(state.consecutive_failures, rng or _JITTER)
        return await run.back_off(INTERNAL_ERROR, delay)
    return await run.caught_up(interval)


def scheduled_sync(
    adapter_factory: AdapterFactory,
    events: EventBus,
    *,
    default_interval_seconds: float,
    after_sync: AfterSync | None = None,
) -> Callable[[int, str], Awaitable[SyncOutcome]]:
    """``sync_account`` as the worker loop (``sync.jobs.run_jobs``) calls it: for a leased
    account, fenced by that lease."""

    async def run(account_id: int, lease_owner: str) -> SyncOutcome:
        return await sync_account(
            account_id,
            adapter_factory,
            events,
            default_interval_seconds=default_interval_seconds,
            lease_owner=lease_owner,
            after_sync=after_sync,
        )

    return run


class _Run:
    """One run of one account: the batches it applied and the SyncState it leaves."""

    def __init__(
        self, account: Account, state: SyncState, events: EventBus, lease_owner: str | None
    ) -> None:
        self._account = account
        self._state = state
        self._events = events
        self._lease_owner = lease_owner
        self._with_content = account.cache_bodies
        self._page_token: str | None = state.full_sync_page_token
        self._due_at = state.next_run_at
        self._fresh_full_sync = False
        self._folders_listed = False
        self.added = self.changed = self.deleted = self.full_syncs = 0

    async def catch_up(self, adapter: MailboxAdapter) -> None:
        cursor: str | None = self._state.cursor
        while True:
            try:
                if cursor is None:
                    cursor = await self._full_sync(adapter)
                await self._incremental(adapter, cursor)
                return
            except CursorExpired:
                if self._fresh_full_sync:
                    raise CursorExpiredAgain("the cursor of a fresh full sync expired") from None
                # Exactly one fresh full sync per run (PROVIDERS.md G4, M5).
                logger.info("account %s: cursor expired, full resync", self._account.id)
                await self._save(cursor=None, full_sync_page_token=None, phase=SyncPhase.INITIAL)
                cursor = self._page_token = None

    async def _full_sync(self, adapter: MailboxAdapter) -> str:
        stored = self._page_token
        resumed = FullSyncPass.resume(stored) if stored else None
        if resumed is None:
            full_sync, token = FullSyncPass.begin(), None
            self._fresh_full_sync = True
        else:
            full_sync, token = resumed
        self.full_syncs += 1
        # The next page is fetched while this one is applied: fetching is network-bound,
        # applying database-bound, and the page token is known before the apply starts.
        pending = asyncio.ensure_future(
            adapter.full_sync_page(token, with_content=self._with_content)
        )
        try:
            while True:
                batch = await pending
                if batch.next_page_token is not None:
                    pending = asyncio.ensure_future(
                        adapter.full_sync_page(
                            batch.next_page_token, with_content=self._with_content
                        )
                    )
                # A label created since the first page listed the folders gets one too.
                await self._apply(await self._with_new_folders(adapter, batch), full_sync)
                if batch.next_page_token is None:
                    if batch.cursor is None:
                        raise ProviderError("a full sync ended without a cursor", code="NO_CURSOR")
                    return batch.cursor
        finally:
            pending.cancel()  # the look-ahead, when this page failed or the run was cancelled
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved, so asyncio never reports it as lost

    async def _incremental(self, adapter: MailboxAdapter, cursor: str) -> None:
        while True:
            batch = await adapter.changes_since(cursor, with_content=self._with_content)
            await self._apply(await self._with_new_folders(adapter, batch))
            if batch.complete:
                return
            if batch.cursor is None or batch.cursor == cursor:
                raise ProviderError("an incomplete batch did not advance", code="NO_PROGRESS")
            cursor = batch.cursor

    async def _with_new_folders(self, adapter: MailboxAdapter, batch: ChangeBatch) -> ChangeBatch:
        """The batch with the complete folder list when its messages carry a label the cache
        has no folder for (created since the folders were listed): at most once per run."""
        if self._folders_listed:
            return batch
        account_id = self._account.id
        known_not_folders = _NOT_FOLDERS.get(account_id, frozenset())
        unknown = await folders_unknown_to_cache(account_id, batch) - known_not_folders
        if not unknown:
            return batch
        self._folders_listed = True
        folders = await adapter.list_folders()
        listed = {folder.provider_id for folder in folders}
        _NOT_FOLDERS[account_id] = known_not_folders | (unknown - listed)
        return replace(batch, folders=folders)

    async def _apply(self, batch: ChangeBatch, full_sync: FullSyncPass | None = None) -> None:
        result = await apply_batch(
            self._account.id,
            batch,
            events=self._events,
            full_sync=full_sync,
            lease_owner=self._lease_owner,
        )
        self.added += result.added
        self.changed += result.changed
        self.deleted += result.deleted

    # -- how the run ends -----------------------------------------------------------------

    async def caught_up(self, interval_seconds: float) -> SyncOutcome:
        now = clock.now()
        success: dict[str, Any] = {
            "phase": SyncPhase.INCREMENTAL,
            "last_success_at": now,
            "last_error_code": None,
            "consecutive_failures": 0,
        }
        next_run_at: datetime | None = now + timedelta(seconds=interval_seconds)
        # A "sync now" that came in during this run (a push for mail that arrived after the
        # changes were read) moved next_run_at: it keeps its earlier time, so the account is
        # due again as soon as this run lets go of it.
        unrequested = SyncState.filter(next_run_at=self._due_at)
        if self._due_at is None:
            unrequested = SyncState.filter(next_run_at__isnull=True)
        if not await self._save(unrequested, **success, next_run_at=next_run_at):
            if not await self._save(**success):
                return self.outcome(OutcomeKind.SKIPPED)
            next_run_at = (await SyncState.get(account_id=self._account.id)).next_run_at
        logger.info(
            "account %s synced: %d added, %d changed, %d deleted",
            self._account.id,
            self.added,
            self.changed,
            self.deleted,
        )
        return self.outcome(OutcomeKind.SYNCED, next_run_at=next_run_at)

    async def back_off(self, code: str, delay_seconds: float) -> SyncOutcome:
        now = clock.now()
        next_run_at = now + timedelta(seconds=delay_seconds)
        saved = await self._save(
            phase=SyncPhase.BACKOFF,
            last_error_code=code,
            last_error_at=now,
            consecutive_failures=self._state.consecutive_failures + 1,
            next_run_at=next_run_at,
        )
        if not saved:
            return self.outcome(OutcomeKind.SKIPPED)
        logger.warning("account %s: %s, retry in %.1f s", self._account.id, code, delay_seconds)
        return self.outcome(OutcomeKind.BACKING_OFF, error_code=code, next_run_at=next_run_at)

    async def needs_reauth(self, error: AuthRevoked) -> SyncOutcome:
        account = self._account
        async with in_transaction():
            saved = await self._save(
                phase=SyncPhase.STOPPED,
                last_error_code=error.code,
                last_error_at=clock.now(),
                consecutive_failures=self._state.consecutive_failures + 1,
                next_run_at=None,
            )
            if not saved:
                return self.outcome(OutcomeKind.SKIPPED)
            # The token source may have marked the account already (with its change-log row
            # and event): one status change, one row.
            marked = await Account.filter(id=account.id, status=AccountStatus.ACTIVE).update(
                status=AccountStatus.NEEDS_REAUTH, status_reason=error.code
            )
            entry = None
            if marked:
                entry = await ChangeLogEntry.create(
                    account_id=account.id,
                    kind=ChangeKind.ACCOUNT_STATUS,
                    detail={"status": AccountStatus.NEEDS_REAUTH.value, "reason": error.code},
                )
        if entry is not None:
            await self._events.publish(AccountChanged(account.owner_id, account.id, entry.id))
        logger.warning("account %s needs re-authorisation (%s)", account.id, error.code)
        return self.outcome(OutcomeKind.NEEDS_REAUTH, error_code=error.code)

    def outcome(self, kind: OutcomeKind, **details: Any) -> SyncOutcome:
        return SyncOutcome(
            self._account.id,
            kind,
            added=self.added,
            changed=self.changed,
            deleted=self.deleted,
            full_syncs=self.full_syncs,
            **details,
        )

    async def _save(self, query: QuerySet[SyncState] | None = None, **fields: Any) -> bool:
        """Update the SyncState row (only while this worker holds the lease, when it has one;
        only if ``query`` matches it, when given)."""
        query = (query or SyncState.all()).filter(account_id=self._account.id)
        if self._lease_owner is not None:
            query = query.filter(lease_owner=self._lease_owner)
        return bool(await query.update(**fields))
