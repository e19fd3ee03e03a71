"""Issuing, listing and revoking API tokens. The raw token leaves this module exactly once.

A token never grants more than its creator holds: actions and accounts are checked against the
creating principal. Revocation takes effect at once in this process (the authenticator cache is
cleared) and is published so other processes and open subscriptions follow within seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app import clock
from app.auth.authenticator import TokenAuthenticator
from app.auth.principal import Principal
from app.auth.tokens import display_prefix, generate_token, token_digest
from app.events import EventBus, TokenRevoked
from app.models import Account, ApiToken
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.types import AccountId, Action, OwnerId

MAX_TOKEN_NAME = 200


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token row and the raw token, which nothing can return again."""

    token: ApiToken
    raw: str


async def issue_token(
    owner_id: OwnerId,
    *,
    name: str,
    actions: Iterable[Action],
    account_ids: Iterable[int] | None,
    expires_at: datetime | None = None,
    creator: Principal | None = None,
) -> IssuedToken:
    """Create a token. ``creator`` None means the operator (CLI) acting for the owner."""
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    wanted_actions = frozenset(actions)
    if not wanted_actions:
        raise InvalidInput("a token needs at least one action", field="actions")
    wanted_accounts = None if account_ids is None else frozenset(AccountId(a) for a in account_ids)
    if expires_at is not None and expires_at <= clock.now():
        raise InvalidInput("expiresAt must be in the future", field="expiresAt")
    if creator is not None and not creator.covers(wanted_actions, wanted_accounts):
        raise Forbidden("a token cannot grant more than its creator holds")
    if wanted_accounts:
        owned = await Account.filter(owner_id=owner_id, id__in=list(wanted_accounts)).count()
        if owned != len(wanted_accounts):
            raise NotFound("account not found")
    raw = generate_token()
    token = await ApiToken.create(
        owner_id=owner_id,
        name=name,
        digest=token_digest(raw),
        display_prefix=display_prefix(raw),
        actions=sorted(a.value for a in wanted_actions),
        account_ids=None if wanted_accounts is None else sorted(wanted_accounts),
        expires_at=expires_at,
    )
    return IssuedToken(token, raw)


async def list_tokens(owner_id: OwnerId) -> list[ApiToken]:
    return await ApiToken.filter(owner_id=owner_id).order_by("-created_at", "-id")


async def revoke_token(
    owner_id: OwnerId,
    token_id: int,
    *,
    authenticator: TokenAuthenticator,
    events: EventBus,
) -> ApiToken:
    """Revoke one of the owner's tokens; revoking twice is harmless."""
    token = await ApiToken.get_or_none(id=token_id, owner_id=owner_id)
    if token is None:
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        await token.save(update_fields=["revoked_at"])
    authenticator.invalidate_token(token.id)
    await events.publish(TokenRevoked(owner_id=owner_id, token_id=token.id))
    return token
