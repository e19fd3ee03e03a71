"""Connecting and disconnecting mailboxes (scope ``accounts:manage``).

``connectGmail`` and ``connectMicrosoft`` return the provider's consent URL; the user's browser
goes there, and the provider sends it back to ``/oauth/callback/google`` or
``/oauth/callback/microsoft`` (``app.server.oauth_callback``), where the account is created.
The URL works once, for 10 minutes. No token, code or verifier ever appears in a result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry

from app.auth.principal import Principal
from app.services.connect_gmail import start_gmail_connect
from app.services.connect_microsoft import start_microsoft_connect
from app.services.disconnect import disconnect_account
from app.services.errors import ServiceError
from app.settings import Settings
from app.types import Action
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.owner import MutationError, MutationErrorCode
from resolvers.permissions import requires

Start = Callable[..., Awaitable[str]]


@strawberry.type(description="Where to send the user's browser to connect a mailbox.")
class ConnectStarted:
    authorization_url: str = strawberry.field(
        description="The provider's consent page. Valid once, for 10 minutes."
    )


@strawberry.type(description="A mailbox that was disconnected and erased.")
class AccountDisconnected:
    id: strawberry.ID
    revoked_at_provider: bool = strawberry.field(
        description="Whether the provider confirmed that our access is revoked (Gmail). "
        "Microsoft has no revocation an app can call: the user removes the app from their "
        "account's apps page."
    )


ConnectResult = Annotated[ConnectStarted | MutationError, strawberry.union("ConnectResult")]
DisconnectAccountResult = Annotated[
    AccountDisconnected | MutationError, strawberry.union("DisconnectAccountResult")
]

# Arguments are described here rather than one by one: a field whose arguments carry
# descriptions spans several lines of schema.graphql, which tests/resolvers/test_scopes.py reads
# line by line.
_ARGUMENTS = (
    " `returnUrl`: where the browser goes once the provider answered (its origin must be in "
    "INBOX_API_OAUTH_RETURN_ORIGINS), with `status=connected&account=<id>` or "
    "`status=error&error=<code>` added; without it, the server shows a short page. "
    "`loginHint`: the mailbox address to suggest to the user."
)


def _expected(error: ServiceError) -> MutationError:
    """Expected failures become a MutationError; anything else stays a coded top-level error
    (e.g. NOT_CONFIGURED when the server has no OAuth client for the provider)."""
    if error.code not in MutationErrorCode.__members__:
        raise error
    return MutationError.from_service(error)


async def _start(
    start: Start, info: strawberry.Info[Context, None], return_url: str | None, hint: str | None
) -> ConnectResult:
    settings: Settings = info.context.services.settings
    principal: Principal = info.context.require_principal()
    try:
        url = await start(settings, principal, return_url=return_url, login_hint=hint)
    except ServiceError as error:
        return _expected(error)
    return ConnectStarted(authorization_url=url)


@strawberry.type
class ConnectMutation:
    @strawberry.mutation(
        extensions=requires(Action.ACCOUNTS_MANAGE),
        description="Start connecting a Gmail mailbox (Google OAuth with PKCE, offline access)."
        + _ARGUMENTS,
    )
    async def connect_gmail(
        self,
        info: strawberry.Info[Context, None],
        return_url: str | None = None,
        login_hint: str | None = None,
    ) -> ConnectResult:
        return await _start(start_gmail_connect, info, return_url, login_hint)

    @strawberry.mutation(
        extensions=requires(Action.ACCOUNTS_MANAGE),
        description="Start connecting a Microsoft 365 / Outlook mailbox (Microsoft identity "
        "platform with PKCE)." + _ARGUMENTS,
    )
    async def connect_microsoft(
        self,
        info: strawberry.Info[Context, None],
        return_url: str | None = None,
        login_hint: str | None = None,
    ) -> ConnectResult:
        return await _start(start_microsoft_connect, info, return_url, login_hint)

    @strawberry.mutation(
        extensions=requires(Action.ACCOUNTS_MANAGE),
        description="Disconnect a mailbox: revoke our access where the provider allows it, "
        "stop its sync and erase its credentials and cached mail.",
    )
    async def disconnect_account(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> DisconnectAccountResult:
        number = decode_typed(id, "Account")
        if number is None:
            return MutationError(code=MutationErrorCode.NOT_FOUND, message="account not found")
        try:
            done = await disconnect_account(
                info.context.services.settings, info.context.require_principal(), number
            )
        except ServiceError as error:
            return _expected(error)
        return AccountDisconnected(
            id=strawberry.ID(encode_id("Account", done.account_id)),
            revoked_at_provider=done.revoked_at_provider,
        )
