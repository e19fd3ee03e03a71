"""Terminating an owner: everything stops at once, and the purge deletes every row later.

At once, in one transaction: ``terminated_at`` is set, every token is revoked, every account is
DISABLED (reason OWNER_TERMINATED) and its sync STOPPED with its lease dropped, and pending OAuth
consents are deleted. After the commit: this process forgets the owner's cached principals, an
``OwnerTerminated`` event closes the owner's sockets and clears caches in every process, the
provider grants are revoked where the provider allows it (best effort, through
``app.services.disconnect``), the sealed credentials are deleted, and so are the exports.

What stops a sync already running: ``sync.jobs`` leases only ACTIVE accounts of live owners,
and ``sync.apply`` writes nothing for an account whose owner is terminated (``AccountGone``)
nor without its lease (``LeaseLost``). ``app.services.purge`` deletes what remains
(``termination_grace_days`` later, under 30 days as promised).

This module must never touch another owner's rows, and never lets a provider that cannot be
reached keep a termination from taking effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from app import clock
from app.auth.authenticator import TokenAuthenticator
from app.events import EventBus, OwnerTerminated
from app.models import Account, ApiToken, Owner, PendingAuthorization, SyncState
from app.services.credentials import delete_credentials
from app.services.disconnect import revoke_provider_grant
from app.services.errors import InvalidInput, NotFound
from app.services.export import delete_owner_exports
from app.services.owners import get_owner
from app.settings import Settings
from app.types import AccountId, AccountStatus, OwnerId, SyncPhase

logger = logging.getLogger(__name__)

OWNER_TERMINATED = "OWNER_TERMINATED"


@dataclass(frozen=True, slots=True)
class Termination:
    """What terminating an owner did, and when the rest of its data goes."""

    owner_id: OwnerId
    terminated_at: datetime
    purge_after: datetime
    tokens_revoked: int
    accounts_stopped: int
    grants_revoked: int


async def terminate_owner(
    settings: Settings,
    owner_id: OwnerId,
    *,
    confirm: str,
    authenticator: TokenAuthenticator,
    events: EventBus,
) -> Termination:
    """Terminate the owner if ``confirm`` is its email address (case aside)."""
    owner = await get_owner(owner_id)
    if confirm.strip().casefold() != owner.email.strip().casefold():
        raise InvalidInput("confirm must be the owner's email address", field="confirm")
    now = clock.now()
    async with in_transaction() as conn:
        # Conditional: of two concurrent terminations only one goes on; the other is NotFound.
        stopped = await (
            Owner.filter(id=owner_id, terminated_at=None).using_db(conn).update(terminated_at=now)
        )
        if not stopped:
            raise NotFound("owner not found")
        tokens = await (
            ApiToken.filter(owner_id=owner_id, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        accounts = await Account.filter(owner_id=owner_id).using_db(conn).order_by("id")
        account_ids = [account.id for account in accounts]
        await (
            Account.filter(owner_id=owner_id)
            .using_db(conn)
            .update(status=AccountStatus.DISABLED, status_reason=OWNER_TERMINATED)
        )
        await (
            SyncState.filter(account_id__in=account_ids)
            .using_db(conn)
            .update(
                phase=SyncPhase.STOPPED, next_run_at=None, lease_owner=None, lease_expires_at=None
            )
        )
        await PendingAuthorization.filter(owner_id=owner_id).using_db(conn).delete()
    authenticator.invalidate_owner(owner_id)
    await events.publish(OwnerTerminated(owner_id=owner_id))
    revoked = 0
    for account in accounts:
        revoked += await _revoke_grant(settings, account)
        await delete_credentials(AccountId(account.id))
    await delete_owner_exports(settings, owner_id)
    logger.info(
        "owner %s terminated: %d tokens revoked, %d accounts stopped",
        owner_id,
        tokens,
        len(accounts),
    )
    return Termination(
        owner_id=owner_id,
        terminated_at=now,
        purge_after=now + timedelta(days=settings.termination_grace_days),
        tokens_revoked=tokens,
        accounts_stopped=len(accounts),
        grants_revoked=revoked,
    )


async def _revoke_grant(settings: Settings, account: Account) -> bool:
    try:
        return await revoke_provider_grant(settings, account)
    except Exception as error:
        # Best effort: the credentials are deleted next either way.
        logger.warning(
            "revoking the grant of account %s failed (%s)", account.id, type(error).__name__
        )
        return False
