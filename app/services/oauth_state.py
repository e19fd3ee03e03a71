"""Connecting a mailbox over OAuth, the provider-neutral part: pending authorisations and the
account they end in.

    connectGmail / connectMicrosoft           save_pending(state, ...)     row, 10 minutes
        -> the user's browser at the provider                                  |
        -> /oauth/callback/<provider>?state=  take_pending(state, provider)  row deleted: once
        -> the provider's token endpoint      (connect_gmail / connect_microsoft)
        -> save_connected_account(...)        account created or reconnected, tokens sealed,
                                              sync due now, ACCOUNT_STATUS change published

A pending authorisation is found by the SHA-256 of its state, so the state (which travels
through the browser) is never stored; it remembers the owner and the API token that started it,
the provider, the return URL, and the flow's secrets (PKCE verifier, MSAL nonce) sealed with the
vault. Taking it deletes it whether or not the rest succeeds. It is refused when unknown, used,
expired, started for the other provider, or when its owner or token is no longer valid.

Nothing here logs, returns or puts into an error a state, code, verifier or token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from app import clock
from app.auth.principal import Principal
from app.events import EventBus
from app.models import Account, ApiToken, Owner, PendingAuthorization
from app.services.errors import Forbidden, InvalidInput, ServiceError
from app.services.sync_control import resume_sync
from app.services.token_sources import TokenGrant, log_status_change, store_grant
from app.services.vault_keys import current_keyring
from app.settings import Settings
from app.types import AccountId, AccountStatus, OwnerId, Provider
from vault import DecryptionError, Secret, UnknownKeyError, open_sealed, seal

CALLBACK_PATHS = {
    Provider.GMAIL: "/oauth/callback/google",
    Provider.GRAPH: "/oauth/callback/microsoft",
}
STATE_LIFETIME = timedelta(minutes=10)
MAX_STATE_LENGTH = 128
MAX_RETURN_URL_LENGTH = 2000


class ConnectFailed(ServiceError):
    """A connect could not complete. ``code`` says why; ``return_url`` is where the owner wanted
    the browser to go afterwards, once the state is known to be theirs."""

    def __init__(self, code: str, message: str, *, return_url: str | None = None) -> None:
        super().__init__(message, code=code)
        self.return_url = return_url


@dataclass(frozen=True, slots=True)
class Pending:
    """A taken pending authorisation. ``flow`` is the sealed JSON of the flow's secrets."""

    owner_id: OwnerId
    provider: Provider
    return_url: str | None
    flow: Secret

    def flow_values(self) -> dict[str, Any]:
        values: dict[str, Any] = json.loads(self.flow.reveal())
        return values

    def failed(self, code: str, message: str) -> ConnectFailed:
        """The error that ends this connect, sending the browser back where the owner asked."""
        return ConnectFailed(code, message, return_url=self.return_url)


def callback_url(settings: Settings, provider: Provider) -> str:
    """Where the provider sends the browser back to (register it with the OAuth client)."""
    return settings.public_url.rstrip("/") + CALLBACK_PATHS[provider]


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _associated_data(digest: str) -> bytes:
    return f"inbox-api:oauth-state:{digest}".encode()


def new_state(settings: Settings, principal: Principal, return_url: str | None) -> str:
    """A fresh state for a connect ``principal`` may start, once ``return_url`` is checked.

    Only a token that covers every account may connect one: a new mailbox would fall outside
    a narrower token, and reconnecting could touch an account it may not see.
    """
    if principal.account_ids is not None:
        raise Forbidden("connecting a mailbox needs a token that covers all accounts")
    if return_url is not None and not _allowed_return_url(settings, return_url):
        raise InvalidInput(
            "returnUrl must be an http(s) URL on an origin in INBOX_API_OAUTH_RETURN_ORIGINS",
            field="returnUrl",
        )
    return secrets.token_urlsafe(32)


def _allowed_return_url(settings: Settings, url: str) -> bool:
    if len(url) > MAX_RETURN_URL_LENGTH:
        return False
    try:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
    except ValueError:
        return False
    allowed = {entry.rstrip("/").lower() for entry in settings.oauth_return_origins}
    return parts.scheme in ("http", "https") and not parts.username and origin in allowed


async def save_pending(
    state: str,
    principal: Principal,
    provider: Provider,
    flow: dict[str, Any],
    *,
    return_url: str | None,
) -> None:
    """Remember an authorisation the provider will answer within ``STATE_LIFETIME``."""
    now = clock.now()
    await PendingAuthorization.filter(expires_at__lte=now).delete()
    digest = _digest(state)
    await PendingAuthorization.create(
        state_digest=digest,
        owner_id=principal.owner_id,
        token_id=principal.token_id,
        provider=provider,
        sealed_flow=seal(current_keyring(), json.dumps(flow), _associated_data(digest)),
        return_url=return_url,
        expires_at=now + STATE_LIFETIME,
    )


async def take_pending(state: str | None, provider: Provider) -> Pending:
    """The pending authorisation ``state`` names, deleted so it cannot be used again."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise _unknown_state()
    digest = _digest(state)
    row = await PendingAuthorization.get_or_none(state_digest=digest)
    # Only the request that deletes the row goes on: two racing callbacks cannot both succeed.
    if row is None or await PendingAuthorization.filter(id=row.id).delete() != 1:
        raise _unknown_state()
    if row.expires_at <= clock.now():
        raise ConnectFailed("STATE_EXPIRED", "This sign-in link has expired.")
    if row.provider != provider or not await _starter_still_valid(row):
        raise _unknown_state()
    try:
        flow = open_sealed(current_keyring(), bytes(row.sealed_flow), _associated_data(digest))
    except (UnknownKeyError, DecryptionError):
        raise _unknown_state() from None
    return Pending(OwnerId(row.owner_id), row.provider, row.return_url, flow)


async def take_answered(answer: Mapping[str, str], provider: Provider) -> Pending:
    """The pending authorisation the provider's answer (query or form fields) is for, provided
    the answer carries a code rather than an error."""
    pending = await take_pending(answer.get("state"), provider)
    if answer.get("error") == "access_denied":
        raise pending.failed("ACCESS_DENIED", "Access to the mailbox was not granted.")
    if "error" in answer or not answer.get("code"):
        raise pending.failed("PROVIDER_ERROR", "The provider did not grant access.")
    return pending


def _unknown_state() -> ConnectFailed:
    return ConnectFailed("STATE_INVALID", "This sign-in link is not valid or was already used.")


async def _starter_still_valid(row: PendingAuthorization) -> bool:
    if not await Owner.exists(id=row.owner_id, terminated_at=None):
        return False
    if row.token_id is None:
        return True
    token = await ApiToken.get_or_none(id=row.token_id, owner_id=row.owner_id)
    return (
        token is not None
        and token.revoked_at is None
        and (token.expires_at is None or token.expires_at > clock.now())
    )


async def save_connected_account(
    pending: Pending,
    *,
    address: str,
    display_name: str,
    grant: TokenGrant,
    provider_settings: dict[str, str],
    events: EventBus,
) -> Account:
    """Create the account (or reconnect the owner's account with that address), seal its
    tokens, make its sync due now and publish the status change."""
    if grant.refresh_token is None:
        raise pending.failed("NO_REFRESH_TOKEN", "No offline access was granted; connect again.")
    async with in_transaction():
        account, created = await Account.get_or_create(
            owner_id=pending.owner_id,
            provider=pending.provider,
            address=address.lower(),
            defaults={"display_name": display_name, "provider_settings": provider_settings},
        )
        if not created:
            account.status, account.status_reason = AccountStatus.ACTIVE, None
            account.display_name = display_name or account.display_name
            account.provider_settings = {**account.provider_settings, **provider_settings}
            await account.save(
                update_fields=["status", "status_reason", "display_name", "provider_settings"]
            )
        await store_grant(AccountId(account.id), grant)
        await resume_sync(AccountId(account.id))
        event = await log_status_change(account, reason="CONNECTED")
    await events.publish(event)
    return account
