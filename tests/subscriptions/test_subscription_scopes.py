"""One denial test per scoped subscription field, over a real socket (the HTTP runner of
tests/resolvers/test_scopes.py cannot subscribe; its coverage check counts these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from gql.transport.exceptions import TransportQueryError

from app.models import Account
from app.services.token_sources import mark_needs_reauth
from app.types import ALL_ACTIONS, AccountId, Action
from resolvers.context import Services
from tests.factories import make_owner, make_token
from tests.subscriptions.conftest import (
    LiveServerFactory,
    deliver,
    gql_subscription,
    new_account,
)


async def new_mail(services: Services, account: Account) -> None:
    await deliver(services, account, f"scope-{account.id}")


async def needs_reauth(services: Services, account: Account) -> None:
    await mark_needs_reauth(AccountId(account.id), "INVALID_GRANT", services.events)


Trigger = Callable[[Services, Account], Awaitable[None]]

# (type.field, scope, subscription, what makes it emit)
SCOPED_SUBSCRIPTIONS: list[tuple[str, Action, str, Trigger]] = [
    (
        "Subscription.messageEvents",
        Action.MESSAGES_METADATA,
        "subscription { messageEvents { kind } }",
        new_mail,
    ),
    (
        "Subscription.accountEvents",
        Action.ACCOUNTS_READ,
        "subscription { accountEvents { kind } }",
        needs_reauth,
    ),
]


@pytest.mark.parametrize(
    ("field", "scope", "query", "trigger"),
    SCOPED_SUBSCRIPTIONS,
    ids=[f[0] for f in SCOPED_SUBSCRIPTIONS],
)
async def test_subscription_scope_is_enforced(
    live_server: LiveServerFactory, field: str, scope: Action, query: str, trigger: Trigger
) -> None:
    made = await make_owner()
    account = await new_account(made.owner.id)
    without = await make_token(made.owner, actions=ALL_ACTIONS - {scope})
    with_scope = await make_token(made.owner, actions={scope})
    async with live_server() as server:
        async with gql_subscription(server, without, query) as events:
            with pytest.raises(TransportQueryError) as denied:
                await events()
        errors = denied.value.errors or []
        assert [(e["extensions"]["code"], e["extensions"]["missingScope"]) for e in errors] == [
            ("FORBIDDEN", scope.value)
        ]
        assert denied.value.data is None

        async with gql_subscription(server, with_scope, query) as events:
            await trigger(server.services, account)
            event = await events()
        assert event["kind"] in ("MESSAGE_ADDED", "ACCOUNT_STATUS")
