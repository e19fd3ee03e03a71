"""Connected accounts as the API shows them: never a credential, only whether one is set."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app import clock
from app.auth.principal import Principal
from app.models import Account as AccountRow
from app.models import Credential, SyncState
from app.services import cache_policy
from app.services.errors import ServiceError
from app.types import AccountId, AccountStatus, Action, Provider, SyncPhase
from resolvers import folders, messages, threads
from resolvers.context import Context
from resolvers.filters import MessageFilter, ThreadFilter
from resolvers.ids import decode_typed, encode_id
from resolvers.loaders import account_of as load_account
from resolvers.node import Node
from resolvers.owner import MutationError, MutationErrorCode
from resolvers.permissions import requires

if TYPE_CHECKING:
    from resolvers.folders import Folder
    from resolvers.messages import MessageConnection
    from resolvers.threads import ThreadConnection

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
class Account(Node):
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

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA), description="Its folders or labels."
    )
    async def folders(
        self, info: strawberry.Info[Context, None]
    ) -> list[Annotated[Folder, strawberry.lazy("resolvers.folders")]]:
        return await folders.folders_of(info, self.row_id)

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="Its threads, latest activity first.",
    )
    async def threads(
        self,
        info: strawberry.Info[Context, None],
        filter: ThreadFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Annotated[ThreadConnection, strawberry.lazy("resolvers.threads")]:
        page = threads.page_of(info, first, after, last, before)
        criteria = threads.criteria_of(filter)
        return await threads.threads_of(info, "t.account_id = {}", self.row_id, criteria, page)

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA), description="Its messages, newest first."
    )
    async def messages(
        self,
        info: strawberry.Info[Context, None],
        filter: MessageFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Annotated[MessageConnection, strawberry.lazy("resolvers.messages")]:
        page = messages.page_of(info, first, after, last, before)
        criteria = messages.criteria_of(filter)
        return await messages.messages_of(info, "m.account_id = {}", self.row_id, criteria, page)

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


async def account_of(info: strawberry.Info[Context, None], account_id: int) -> Account:
    """The account of an object the caller reads already (a message, thread or folder)."""
    row = await load_account(info.context, account_id)
    if row is None:
        # The object was read in this request, so its account existed a moment ago.
        raise LookupError("account vanished")
    return Account.from_row(row)


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


@strawberry.type
class CachePolicyUpdated:
    account: Account


SetCachePolicyResult = Annotated[
    CachePolicyUpdated | MutationError, strawberry.union("SetCachePolicyResult")
]


@strawberry.type
class AccountMutation:
    @strawberry.mutation(
        extensions=requires(Action.ACCOUNTS_MANAGE),
        description="Set how long and how much of an account's mail the cache keeps. Omitted "
        "arguments stay as they are; `retentionDays: null` keeps cached mail forever.",
    )
    async def set_cache_policy(
        self,
        info: strawberry.Info[Context, None],
        account_id: strawberry.ID,
        retention_days: int | None = strawberry.UNSET,
        cache_bodies: bool | None = None,
        fetch_uncached_bodies: bool | None = None,
    ) -> SetCachePolicyResult:
        principal = info.context.require_principal()
        number = decode_typed(account_id, "Account")
        if number is None or not principal.may_touch(number):
            return MutationError(code=MutationErrorCode.NOT_FOUND, message="account not found")
        try:
            row = await cache_policy.set_cache_policy(
                principal.owner_id,
                AccountId(number),
                retention_days=cache_policy.KEEP
                if retention_days is strawberry.UNSET
                else retention_days,
                cache_bodies=cache_bodies,
                fetch_uncached_bodies=fetch_uncached_bodies,
            )
        except ServiceError as error:
            return MutationError.from_service(error)
        return CachePolicyUpdated(account=Account.from_row(row))
