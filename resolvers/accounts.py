"""Connected accounts as the API shows them: never a credential, only whether one is set."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app import clock
from app.auth.principal import Principal
from app.models import Account as AccountRow
from app.models import Credential, SyncState
from app.types import AccountStatus, Action, Provider, SyncPhase
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.permissions import requires

strawberry.enum(Provider, description="Where a mailbox lives.")
strawberry.enum(AccountStatus, description="Health of a connected account.")
strawberry.enum(SyncPhase, description="Where an account's sync stands.")


@strawberry.type(description="How long and how much of an account's mail the cache keeps.")
class CachePolicy:
    retention_days: int | None = strawberry.field(
        description="Cached messages older than this are purged; null keeps them."
    )
    cache_bodies: bool = strawberry.field(description="Whether bodies are stored in the cache.")
    fetch_uncached_bodies: bool = strawberry.field(
        description="Whether a body that is not cached is fetched from the provider on demand."
    )


@strawberry.type(description="The state of an account's sync.")
class SyncStatus:
    phase: SyncPhase
    last_success_at: datetime | None
    lag_seconds: float | None = strawberry.field(
        description="Seconds since the last successful sync."
    )
    last_error_code: str | None
    needs_reauthorization: bool


@strawberry.type(description="A connected mailbox.")
class Account:
    id: strawberry.ID
    provider: Provider
    address: str
    display_name: str
    status: AccountStatus
    cache_policy: CachePolicy
    row_id: strawberry.Private[int]

    @strawberry.field(description="Whether credentials are stored (they are never shown).")
    async def credentials_set(self) -> bool:
        return await Credential.filter(account_id=self.row_id).exists()

    @strawberry.field(description="When the stored credentials were last written or re-wrapped.")
    async def credentials_rotated_at(self) -> datetime | None:
        row = await Credential.filter(account_id=self.row_id).order_by("-rotated_at").first()
        return None if row is None else row.rotated_at

    @strawberry.field(description="Sync state, last success, lag and last error.")
    async def sync(self) -> SyncStatus:
        state = await SyncState.get_or_none(account_id=self.row_id)
        last = None if state is None else state.last_success_at
        return SyncStatus(
            phase=SyncPhase.PENDING if state is None else state.phase,
            last_success_at=last,
            lag_seconds=None if last is None else (clock.now() - last).total_seconds(),
            last_error_code=None if state is None else state.last_error_code,
            needs_reauthorization=self.status == AccountStatus.NEEDS_REAUTH,
        )

    @classmethod
    def from_row(cls, row: AccountRow) -> Account:
        return cls(
            id=strawberry.ID(encode_id("Account", row.id)),
            provider=row.provider,
            address=row.address,
            display_name=row.display_name,
            status=row.status,
            cache_policy=CachePolicy(
                retention_days=row.retention_days,
                cache_bodies=row.cache_bodies,
                fetch_uncached_bodies=row.fetch_uncached_bodies,
            ),
            row_id=row.id,
        )


def visible_accounts(principal: Principal) -> dict[str, object]:
    """ORM filter for the accounts this principal may see."""
    filters: dict[str, object] = {"owner_id": principal.owner_id}
    if principal.account_ids is not None:
        filters["id__in"] = sorted(principal.account_ids)
    return filters


async def find_account(principal: Principal, global_id: str) -> AccountRow | None:
    """The account, or None when it does not exist or the principal may not see it."""
    number = decode_typed(global_id, "Account")
    if number is None or not principal.may_touch(number):
        return None
    return await AccountRow.get_or_none(id=number, owner_id=principal.owner_id)


@strawberry.type
class AccountQueries:
    @strawberry.field(
        extensions=requires(Action.ACCOUNTS_READ), description="The accounts the token may see."
    )
    async def accounts(self, info: strawberry.Info[Context, None]) -> list[Account]:
        principal = info.context.require_principal()
        rows = await AccountRow.filter(**visible_accounts(principal)).order_by("id")
        return [Account.from_row(row) for row in rows]

    @strawberry.field(
        extensions=requires(Action.ACCOUNTS_READ), description="One account, or null if unknown."
    )
    async def account(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Account | None:
        row = await find_account(info.context.require_principal(), id)
        return None if row is None else Account.from_row(row)
