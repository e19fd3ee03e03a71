"""The "sync now" use case: make an account due at once (an API mutation, a provider's push),
and ``resume_sync`` for an account connected or reconnected (OAuth, ``connectImap``).

The worker (``sync.jobs``) picks a due account up within its idle interval, in whichever process
it runs. A provider's rate-limit wait is honoured: an account backing off keeps its
``next_run_at`` (Gmail may push about once a second; each push must not shorten the wait).

Callers check the caller's right to the account first; this module only schedules. It never
runs a sync itself and never talks to a provider.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q

from app import clock
from app.models import Account, SyncState
from app.types import AccountId, SyncPhase


async def request_sync_now(account_id: AccountId) -> datetime | None:
    """Make the account due now; returns when its next run may start (None: no such account)."""
    now = clock.now()
    if not await Account.exists(id=account_id):
        return None
    # The row may not exist yet for an account connected a moment ago.
    await SyncState.bulk_create(
        [SyncState(account_id=account_id, next_run_at=now)], ignore_conflicts=True
    )
    await (
        SyncState.filter(account_id=account_id)
        .filter(
            Q(phase__not=SyncPhase.BACKOFF) | Q(next_run_at__isnull=True) | Q(next_run_at__lte=now)
        )
        .update(next_run_at=now)
    )
    state = await SyncState.get_or_none(account_id=account_id)
    return None if state is None else state.next_run_at


async def resume_sync(account_id: AccountId) -> None:
    """After a (re)connect: due now, the old credentials' failures forgotten, and a sync stopped
    for want of a grant resumed where its cursor stands (or from the start without one)."""
    state, created = await SyncState.get_or_create(
        account_id=account_id, defaults={"next_run_at": clock.now()}
    )
    if created:
        return
    state.next_run_at = clock.now()
    state.consecutive_failures = 0
    state.last_error_code = None
    if state.phase == SyncPhase.STOPPED:
        state.phase = SyncPhase.INCREMENTAL if state.cursor else SyncPhase.PENDING
    await state.save(
        update_fields=["next_run_at", "consecutive_failures", "last_error_code", "phase"]
    )
