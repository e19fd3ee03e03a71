"""Microsoft 365 / Outlook over the Microsoft identity platform with MSAL: connect and refresh.

Connect: ``start_microsoft_connect`` asks MSAL's ``ConfidentialClientApplication`` for an auth
code flow (PKCE, nonce, ``response_mode=form_post``: the code comes back in a POST body rather
than in a URL) and keeps the flow's secrets sealed in a pending authorisation;
``finish_microsoft_connect`` takes them back and lets ``acquire_token_by_auth_code_flow``
redeem the code, then reads the address from Graph ``/me`` (``mail``, else
``userPrincipalName``; the id token's ``preferred_username`` if Graph does not answer). The
browser comes back to ``<public_url>/oauth/callback/microsoft`` (register it as a Web redirect
URI of the app). MSAL asks for ``offline_access`` itself, so a refresh token comes back.

Refresh: ``acquire_token_by_refresh_token``; Microsoft rotates refresh tokens, so the new one
is stored. ``invalid_grant`` and ``interaction_required`` (consent withdrawn, password reset,
new MFA policy) mean the user must connect again. Microsoft offers no revocation endpoint for a
delegated grant: disconnecting forgets our tokens, and the user removes the app in their
account's "apps and services" page.

MSAL runs synchronously on requests; every call runs in a worker thread with a fresh
application object, so no token outlives the call in MSAL's cache. The authority must be https
(MSAL insists) and so must Graph (tokens cross it); instance discovery and authority validation
are off because the authority is the operator's own setting (and an emulator or private cloud
is not on Microsoft's list).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msal
import requests

from app.auth.principal import Principal
from app.events import EventBus
from app.models import Account
from app.services.oauth_state import (
    ConnectFailed,
    Pending,
    callback_url,
    new_state,
    save_connected_account,
    save_pending,
    take_answered,
)
from app.services.token_sources import (
    GrantRevoked,
    NotConfigured,
    TokenEndpointError,
    TokenGrant,
    get_with_token,
    require_https,
    trusting,
)
from app.settings import Settings
from app.types import Provider
from vault import Secret

GRAPH_SCOPES = (
    "https://graph.microsoft.com/Mail.ReadWrite",
    "https://graph.microsoft.com/Mail.Send",
    "https://graph.microsoft.com/User.Read",
)
REAUTH_ERRORS = frozenset({"invalid_grant", "interaction_required"})
T = TypeVar("T")


async def _with_msal(settings: Settings, call: Callable[[Any], T]) -> T:
    """Run ``call(application)`` in a thread, on a fresh MSAL application and HTTP session."""
    secret = settings.microsoft_client_secret
    if not settings.microsoft_client_id or secret is None or not secret.get_secret_value():
        raise NotConfigured("Microsoft is not configured on this server (Entra app)")
    require_https(settings.microsoft_authority, "INBOX_API_MICROSOFT_AUTHORITY")
    require_https(settings.graph_api_base, "INBOX_API_GRAPH_API_BASE")
    client_id, client_secret = settings.microsoft_client_id, secret.get_secret_value()

    def run() -> T:
        with trusting(requests.Session(), settings.microsoft_ca_file) as session:
            application = msal.ConfidentialClientApplication(
                client_id,
                client_credential=client_secret,
                authority=settings.microsoft_authority,
                instance_discovery=False,
                validate_authority=False,
                http_client=session,
            )
            return call(application)

    return await asyncio.to_thread(run)


async def start_microsoft_connect(
    settings: Settings,
    principal: Principal,
    *,
    return_url: str | None,
    login_hint: str | None,
) -> str:
    """The sign-in URL to send the user's browser to."""
    state = new_state(settings, principal, return_url)
    try:
        flow: dict[str, Any] = await _with_msal(
            settings,
            lambda application: application.initiate_auth_code_flow(
                list(GRAPH_SCOPES),
                redirect_uri=callback_url(settings, Provider.GRAPH),
                state=state,
                login_hint=login_hint,
                response_mode="form_post",
            ),
        )
    except (requests.RequestException, ValueError):
        # MSAL raises ValueError when the authority's OpenID configuration cannot be read.
        raise ConnectFailed("PROVIDER_UNREACHABLE", "Microsoft could not be reached.") from None
    authorization_url = str(flow.pop("auth_uri"))
    await save_pending(state, principal, Provider.GRAPH, flow, return_url=return_url)
    return authorization_url


async def finish_microsoft_connect(
    settings: Settings, events: EventBus, answer: Mapping[str, str]
) -> tuple[Account, Pending]:
    """Complete the flow Microsoft's form post (``answer``: its fields) belongs to."""
    pending = await take_answered(answer, Provider.GRAPH)
    flow = pending.flow_values()
    try:
        result: dict[str, Any] = await _with_msal(
            settings,
            lambda application: application.acquire_token_by_auth_code_flow(flow, dict(answer)),
        )
    except (requests.RequestException, ValueError):
        raise pending.failed("PROVIDER_UNREACHABLE", "Microsoft could not be reached.") from None
    if "access_token" not in result:
        raise pending.failed("TOKEN_EXCHANGE_FAILED", "Microsoft refused the sign-in.")
    grant = TokenGrant.from_response(
        result["access_token"], float(result["expires_in"]), result.get("refresh_token")
    )
    claims: dict[str, Any] = result.get("id_token_claims") or {}
    address, display_name = await _me(settings, grant.access_token, claims, pending)
    identity = {key: str(claims[claim]) for key, claim in _IDENTITY.items() if claim in claims}
    account = await save_connected_account(
        pending,
        address=address,
        display_name=display_name,
        grant=grant,
        provider_settings=identity,
        events=events,
    )
    return account, pending


# Non-secret ids worth keeping with the account (Account.provider_settings).
_IDENTITY = {"tenant_id": "tid", "object_id": "oid"}


async def _me(
    settings: Settings, access_token: Secret, claims: Mapping[str, Any], pending: Pending
) -> tuple[str, str]:
    url = settings.graph_api_base.rstrip("/") + "/v1.0/me"
    me = await get_with_token(url, access_token, settings.microsoft_ca_file)
    address = me.get("mail") or me.get("userPrincipalName") or claims.get("preferred_username")
    if not isinstance(address, str) or "@" not in address:
        raise pending.failed("PROFILE_UNAVAILABLE", "Microsoft did not say which mailbox this is.")
    return address, str(me.get("displayName") or claims.get("name") or "")


async def refresh_microsoft_token(settings: Settings, refresh_token: Secret) -> TokenGrant:
    """New tokens from the identity platform; the rotated refresh token comes back too."""
    try:
        result: dict[str, Any] = await _with_msal(
            settings,
            lambda application: application.acquire_token_by_refresh_token(
                refresh_token.reveal(), list(GRAPH_SCOPES)
            ),
        )
    except (requests.RequestException, ValueError):
        raise TokenEndpointError("Microsoft could not be reached", transient=True) from None
    if "access_token" in result:
        return TokenGrant.from_response(
            result["access_token"], float(result["expires_in"]), result.get("refresh_token")
        )
    if result.get("error") in REAUTH_ERRORS:
        raise GrantRevoked
    transient = result.get("error") in ("temporarily_unavailable", "server_error")
    raise TokenEndpointError("Microsoft refused the refresh", transient=transient)
