"""Disconnecting a mailbox: revoke the grant where the provider allows it, then erase the account.

Erasing deletes the account row; the database cascades to everything hanging from it (sealed
credentials, sync state, folders, threads, messages, bodies, attachments, change log), so sync
stops at once and nothing of the mailbox stays behind. Other accounts are untouched.

Revocation: Google revokes the whole grant for its refresh token at the revoke endpoint, so the
user's "third-party access" page no longer lists us. Microsoft has no endpoint an app can call
to drop a user's delegated grant; the tokens are forgotten and expire. Revocation is best
effort: an unreachable provider or an unreadable credential does not keep the data alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.principal import Principal
from app.models import Account
from app.services.connect_gmail import revoke_google_grant
from app.services.credentials import CredentialUnavailable, read_credential
from app.services.errors import NotFound
from app.services.token_sources import NotConfigured
from app.settings import Settings
from app.types import AccountId, CredentialKind, Provider


@dataclass(frozen=True, slots=True)
class Disconnected:
    account_id: AccountId
    revoked_at_provider: bool


async def disconnect_account(
    settings: Settings, principal: Principal, account_id: int
) -> Disconnected:
    """Revoke and erase one account the principal may touch; NotFound for any other id."""
    account = None
    if principal.may_touch(account_id):
        account = await Account.get_or_none(id=account_id, owner_id=principal.owner_id)
    if account is None:
        raise NotFound("account not found")
    revoked = await revoke_provider_grant(settings, account)
    await Account.filter(id=account.id).delete()
    return Disconnected(AccountId(account.id), revoked)


async def revoke_provider_grant(settings: Settings, account: Account) -> bool:
    """Best effort: True when the provider confirmed that our access to the mailbox is gone
    (Gmail); False when it cannot be revoked (Microsoft, IMAP) or revocation failed."""
    return account.provider == Provider.GMAIL and await _revoke_google(settings, account)


async def _revoke_google(settings: Settings, account: Account) -> bool:
    try:
        refresh_token = await read_credential(
            AccountId(account.id), CredentialKind.OAUTH_REFRESH_TOKEN
        )
    except CredentialUnavailable:
        return False
    if refresh_token is None:
        return False
    try:
        return await revoke_google_grant(settings, refresh_token)
    except NotConfigured:
        return False
