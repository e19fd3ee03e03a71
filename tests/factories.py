"""Plain async factories for test rows: ``make_owner()``, ``make_account(owner, **overrides)``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from app.models import Account, Owner
from app.services.owners import create_owner
from app.services.tokens import issue_token
from app.types import ALL_ACTIONS, Action, OwnerId, Provider

_counter = itertools.count(1)


@dataclass
class OwnerWithToken:
    owner: Owner
    token: str


async def make_owner(**overrides: Any) -> OwnerWithToken:
    n = next(_counter)
    owner, issued = await create_owner(
        overrides.get("name", f"Owner {n}"), overrides.get("email", f"owner{n}@example.com")
    )
    return OwnerWithToken(owner, issued.raw)


async def make_account(owner: Owner, **overrides: Any) -> Account:
    n = next(_counter)
    fields: dict[str, Any] = {
        "owner_id": owner.id,
        "provider": Provider.GMAIL,
        "address": f"user{n}@example.com",
        "display_name": f"User {n}",
    }
    fields.update(overrides)
    return await Account.create(**fields)


async def make_token(
    owner: Owner,
    *,
    actions: frozenset[Action] | set[Action] = ALL_ACTIONS,
    account_ids: list[int] | None = None,
    **overrides: Any,
) -> str:
    issued = await issue_token(
        OwnerId(owner.id),
        name=overrides.pop("name", "test token"),
        actions=actions,
        account_ids=account_ids,
        **overrides,
    )
    return issued.raw
