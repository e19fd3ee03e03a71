"""The owner's own corner of the schema: profile, tokens and usage log (scope ``owner``)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from app.models import ApiToken, UsageLogEntry
from app.services import owners as owner_service
from app.services import tokens as token_service
from app.services.errors import ServiceError
from app.types import Action
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.permissions import requires

strawberry.enum(Action, name="Scope", description="An action a token may perform.")

MAX_USAGE_PAGE = 500


@strawberry.type(description="A token's metadata. The token itself is never shown again.")
class Token:
    id: strawberry.ID
    name: str
    display_prefix: str = strawberry.field(description="Non-secret start of the token.")
    scopes: list[Action]
    account_ids: list[strawberry.ID] | None = strawberry.field(
        description="Accounts the token may touch; null means all of the owner's accounts."
    )
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiToken) -> Token:
        return cls(
            id=strawberry.ID(encode_id("Token", row.id)),
            name=row.name,
            display_prefix=row.display_prefix,
            scopes=[Action(a) for a in row.actions],
            account_ids=None
            if row.account_ids is None
            else [strawberry.ID(encode_id("Account", int(a))) for a in row.account_ids],
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


@strawberry.type(description="One API request of the owner, as the usage log keeps it.")
class UsageEntry:
    at: datetime
    token_id: strawberry.ID | None
    operation_name: str | None
    operation_type: str
    status: str
    error_codes: list[str]
    duration_ms: float


@strawberry.type(description="The owner of the calling token.")
class Owner:
    id: strawberry.ID
    name: str
    email: str
    created_at: datetime

    @strawberry.field(extensions=requires(Action.OWNER), description="The owner's tokens.")
    async def tokens(self, info: strawberry.Info[Context, None]) -> list[Token]:
        rows = await token_service.list_tokens(info.context.owner_id)
        return [Token.from_row(row) for row in rows]

    @strawberry.field(
        extensions=requires(Action.OWNER),
        description="The owner's API usage log, newest first (kept 90 days).",
    )
    async def usage(
        self, info: strawberry.Info[Context, None], limit: int = 100
    ) -> list[UsageEntry]:
        limit = max(1, min(limit, MAX_USAGE_PAGE))
        rows = (
            await UsageLogEntry.filter(owner_id=info.context.owner_id)
            .order_by("-at", "-id")
            .limit(limit)
        )
        return [
            UsageEntry(
                at=row.at,
                token_id=None
                if row.token_id is None
                else strawberry.ID(encode_id("Token", row.token_id)),
                operation_name=row.operation_name,
                operation_type=row.operation_type,
                status=row.status,
                error_codes=list(row.error_codes),
                duration_ms=row.duration_ms,
            )
            for row in rows
        ]


async def resolve_viewer(info: strawberry.Info[Context, None]) -> Owner:
    owner = await owner_service.get_owner(info.context.owner_id)
    return Owner(
        id=strawberry.ID(encode_id("Owner", owner.id)),
        name=owner.name,
        email=owner.email,
        created_at=owner.created_at,
    )


@strawberry.enum(description="Why a mutation did not do what was asked.")
class MutationErrorCode(Enum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


@strawberry.type(description="An expected failure of a mutation.")
class MutationError:
    code: MutationErrorCode
    message: str
    field: str | None = None

    @classmethod
    def from_service(cls, error: ServiceError) -> MutationError:
        return cls(
            code=MutationErrorCode(error.code),
            message=str(error),
            field=getattr(error, "field", None),
        )


@strawberry.type(description="A new token. `secret` is shown this once and never again.")
class TokenCreated:
    token: Token
    secret: str


@strawberry.type
class TokenRevokedPayload:
    token: Token


@strawberry.type
class ProfileUpdated:
    owner: Owner


CreateTokenResult = Annotated[TokenCreated | MutationError, strawberry.union("CreateTokenResult")]
RevokeTokenResult = Annotated[
    TokenRevokedPayload | MutationError, strawberry.union("RevokeTokenResult")
]
UpdateProfileResult = Annotated[
    ProfileUpdated | MutationError, strawberry.union("UpdateProfileResult")
]


@strawberry.input(description="What a new token may do, and where.")
class CreateTokenInput:
    name: str
    scopes: list[Action]
    account_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Accounts it may touch; null means all (if you hold all)."
    )
    expires_at: datetime | None = None


@strawberry.type
class OwnerMutation:
    @strawberry.mutation(extensions=requires(Action.OWNER), description="Issue a new API token.")
    async def create_token(
        self, info: strawberry.Info[Context, None], input: CreateTokenInput
    ) -> CreateTokenResult:
        account_ids: list[int] | None = None
        if input.account_ids is not None:
            account_ids = []
            for global_id in input.account_ids:
                number = decode_typed(global_id, "Account")
                if number is None:
                    return MutationError(
                        code=MutationErrorCode.NOT_FOUND, message="account not found"
                    )
                account_ids.append(number)
        try:
            issued = await token_service.issue_token(
                info.context.owner_id,
                name=input.name,
                actions=input.scopes,
                account_ids=account_ids,
                expires_at=input.expires_at,
                creator=info.context.principal,
            )
        except ServiceError as error:
            return MutationError.from_service(error)
        return TokenCreated(token=Token.from_row(issued.token), secret=issued.raw)

    @strawberry.mutation(extensions=requires(Action.OWNER), description="Revoke a token now.")
    async def revoke_token(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> RevokeTokenResult:
        number = decode_typed(id, "Token")
        if number is None:
            return MutationError(code=MutationErrorCode.NOT_FOUND, message="token not found")
        services = info.context.services
        try:
            row = await token_service.revoke_token(
                info.context.owner_id,
                number,
                authenticator=services.authenticator,
                events=services.events,
            )
        except ServiceError as error:
            return MutationError.from_service(error)
        return TokenRevokedPayload(token=Token.from_row(row))

    @strawberry.mutation(
        extensions=requires(Action.OWNER), description="Correct the owner's name or email."
    )
    async def update_profile(
        self,
        info: strawberry.Info[Context, None],
        name: str | None = None,
        email: str | None = None,
    ) -> UpdateProfileResult:
        try:
            await owner_service.update_profile(info.context.owner_id, name=name, email=email)
            return ProfileUpdated(owner=await resolve_viewer(info))
        except ServiceError as error:
            return MutationError.from_service(error)
