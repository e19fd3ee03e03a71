"""OAuth tokens of connected accounts: stored through the vault, handed to adapters, refreshed.

``OAuthTokenSource`` is the ``TokenSource`` of ``sync.providers.adapter`` for one account::

    await source(False)  the cached access token; if it expires within a minute, the one in the
                         vault; if that expires too, a refresh
    await source(True)   the adapter got a 401: a refresh, unless another task or process has
                         stored a newer token than the one this source last handed out

Refreshes of one account are serialised by a per-account lock in this process; across processes
the re-read of the vault under the lock makes a race cost at most one extra refresh (Google keeps
refresh tokens; Microsoft rotates them but honours the previous one for a while). The refresh
itself is provider specific: a ``Refresher`` (``connect_gmail.refresh_google_token``,
``connect_microsoft.refresh_microsoft_token``) turns a refresh token into a ``TokenGrant`` or
raises ``GrantRevoked`` (``invalid_grant``) or ``TokenEndpointError``. On ``GrantRevoked`` the
account is marked ``NEEDS_REAUTH`` (reason ``INVALID_GRANT``), an ``ACCOUNT_STATUS`` change is
logged and published, and ``AuthRevoked`` tells the sync engine to stop until the owner
reconnects. Endpoint failures become ``TransientError`` or ``PermanentError``.

Storage: the refresh token as ``OAUTH_REFRESH_TOKEN``; the access token with its expiry as one
sealed JSON document ``{"token", "expires_at"}`` under ``OAUTH_ACCESS_TOKEN``.

The transport rules of every call to a provider's OAuth endpoints live here too: https only
(``require_https``; oauthlib's OAUTHLIB_INSECURE_TRANSPORT is never needed nor honoured by our
checks), and a configured test CA trusted alone (``trusting``, ``provider_http``).

This module never logs, returns (except to the adapter that sends it) or puts into an error a
token; errors carry codes only.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from tortoise.transactions import in_transaction

from app import clock
from app.events import AccountChanged, EventBus
from app.models import Account, ChangeLogEntry
from app.services.credentials import CredentialUnavailable, read_credential, store_credential
from app.services.errors import ServiceError
from app.types import AccountId, AccountStatus, ChangeKind, CredentialKind
from sync.providers.errors import AuthRevoked, PermanentError, TransientError
from vault import Secret

INVALID_GRANT = "INVALID_GRANT"
MISSING_REFRESH_TOKEN = "MISSING_REFRESH_TOKEN"  # noqa: S105 - a reason code, not a secret
EXPIRY_LEEWAY = timedelta(seconds=60)
PROVIDER_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class NotConfigured(ServiceError):
    """The server lacks the settings a provider needs (client id, secret, https endpoints)."""

    code = "NOT_CONFIGURED"


class GrantRevoked(Exception):
    """The token endpoint refused the refresh token for good (``invalid_grant``)."""


class TokenEndpointError(Exception):
    """The token endpoint failed otherwise; ``transient`` when trying again later may work."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token endpoint answered. ``refresh_token`` None keeps the stored one."""

    access_token: Secret
    expires_at: datetime
    refresh_token: Secret | None = None

    @classmethod
    def from_response(
        cls, access_token: str, expires_in: float, refresh_token: str | None
    ) -> TokenGrant:
        return cls(
            access_token=Secret(access_token),
            expires_at=clock.now() + timedelta(seconds=expires_in),
            refresh_token=None if not refresh_token else Secret(refresh_token),
        )


Refresher = Callable[[Secret], Awaitable[TokenGrant]]
"""``await refresh(refresh_token)`` -> a new grant; raises GrantRevoked or TokenEndpointError."""


def require_https(url: str, setting: str) -> None:
    """Refuse a provider endpoint that is not https: tokens and codes cross it."""
    if urlsplit(url).scheme != "https":
        raise NotConfigured(f"{setting} must be an https URL")


def trusting(session: requests.Session, ca_file: Path | None) -> requests.Session:
    """``session`` (for oauthlib, google-auth or MSAL), trusting ``ca_file`` alone if given.

    ``trust_env`` is switched off with a CA file because requests otherwise lets
    REQUESTS_CA_BUNDLE override ``verify`` (ENVIRONMENT.md).
    """
    if ca_file is not None:
        session.verify = str(ca_file)
        session.trust_env = False
    return session


def provider_http(
    ca_file: Path | None, *, timeout: httpx.Timeout = PROVIDER_TIMEOUT
) -> httpx.AsyncClient:
    """An httpx client for a provider's API or revocation endpoint; with ``ca_file`` it trusts
    that CA alone."""
    if ca_file is None:
        return httpx.AsyncClient(timeout=timeout)
    verify = ssl.create_default_context(cafile=str(ca_file))
    return httpx.AsyncClient(verify=verify, trust_env=False, timeout=timeout)


async def get_with_token(url: str, access_token: Secret, ca_file: Path | None) -> dict[str, Any]:
    """The JSON object a bearer GET answers (a profile); empty when it failed in any way."""
    try:
        async with provider_http(ca_file) as http:
            response = await http.get(
                url, headers={"Authorization": f"Bearer {access_token.reveal()}"}
            )
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    return body if isinstance(body, dict) else {}


async def store_grant(account_id: AccountId, grant: TokenGrant) -> None:
    """Seal the grant's tokens into the account's credentials."""
    document = {"token": grant.access_token.reveal(), "expires_at": grant.expires_at.isoformat()}
    await store_credential(
        account_id, CredentialKind.OAUTH_ACCESS_TOKEN, Secret(json.dumps(document))
    )
    if grant.refresh_token is not None:
        await store_credential(account_id, CredentialKind.OAUTH_REFRESH_TOKEN, grant.refresh_token)


async def log_status_change(account: Account, **detail: str) -> AccountChanged:
    """Write an ``ACCOUNT_STATUS`` change of ``account``; publish the returned event after the
    transaction commits."""
    change = await ChangeLogEntry.create(
        account_id=account.id,
        kind=ChangeKind.ACCOUNT_STATUS,
        detail={"status": account.status.value, **detail},
    )
    return AccountChanged(owner_id=account.owner_id, account_id=account.id, change_id=change.id)


async def mark_needs_reauth(account_id: AccountId, reason: str, events: EventBus) -> None:
    """The grant is gone: the account waits for its owner to connect it again."""
    async with in_transaction():
        account = await Account.filter(id=account_id).select_for_update().first()
        if account is None or account.status in (
            AccountStatus.NEEDS_REAUTH,
            AccountStatus.DISABLED,
        ):
            return
        account.status, account.status_reason = AccountStatus.NEEDS_REAUTH, reason
        await account.save(update_fields=["status", "status_reason"])
        event = await log_status_change(account, reason=reason)
    await events.publish(event)


@dataclass(frozen=True, slots=True)
class _AccessToken:
    token: Secret
    expires_at: datetime

    def fresh(self) -> bool:
        return clock.now() + EXPIRY_LEEWAY < self.expires_at


# One lock per account id, alive while some token source of that account holds it.
_refresh_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


def _refresh_lock(account_id: int) -> asyncio.Lock:
    lock = _refresh_locks.get(account_id)
    if lock is None:
        lock = _refresh_locks[account_id] = asyncio.Lock()
    return lock


class OAuthTokenSource:
    """The ``TokenSource`` of one account (see the module docstring)."""

    def __init__(self, account_id: AccountId, refresh: Refresher, events: EventBus) -> None:
        self._account_id = account_id
        self._refresh = refresh
        self._events = events
        self._lock = _refresh_lock(account_id)
        self._current: _AccessToken | None = None

    async def __call__(self, force_refresh: bool) -> str:
        current = self._current
        if not force_refresh and current is not None and current.fresh():
            return current.token.reveal()
        async with self._lock:
            stored = await self._stored_access_token()
            # Newer than the one handed out: another task or process refreshed meanwhile.
            newer = stored is not None and current is not None and stored.token != current.token
            if stored is not None and stored.fresh() and (newer or not force_refresh):
                self._current = stored
            else:
                self._current = await self._refreshed()
            return self._current.token.reveal()

    async def _stored_access_token(self) -> _AccessToken | None:
        sealed = await self._read(CredentialKind.OAUTH_ACCESS_TOKEN)
        if sealed is None:
            return None
        document = json.loads(sealed.reveal())
        return _AccessToken(
            Secret(document["token"]), datetime.fromisoformat(document["expires_at"])
        )

    async def _refreshed(self) -> _AccessToken:
        refresh_token = await self._read(CredentialKind.OAUTH_REFRESH_TOKEN)
        if refresh_token is None:
            await mark_needs_reauth(self._account_id, MISSING_REFRESH_TOKEN, self._events)
            raise AuthRevoked("no refresh token is stored", code=MISSING_REFRESH_TOKEN)
        try:
            grant = await self._refresh(refresh_token)
        except GrantRevoked:
            await mark_needs_reauth(self._account_id, INVALID_GRANT, self._events)
            raise AuthRevoked("the provider revoked the grant", code=INVALID_GRANT) from None
        except TokenEndpointError as error:
            if error.transient:
                raise TransientError("token refresh failed; try again later") from None
            raise PermanentError("token refresh refused", code="TOKEN_REFRESH_REFUSED") from None
        await store_grant(self._account_id, grant)
        return _AccessToken(grant.access_token, grant.expires_at)

    async def _read(self, kind: CredentialKind) -> Secret | None:
        try:
            return await read_credential(self._account_id, kind)
        except CredentialUnavailable as error:
            # The credentials module marked the account; reconnecting is the cure here too.
            raise AuthRevoked("stored credentials cannot be read", code=error.code) from None
