"""Gmail over Google OAuth 2.0: the connect flow, token refresh and grant revocation.

Connect: ``start_gmail_connect`` builds the consent URL with google-auth-oauthlib's ``Flow``
(authorization code with PKCE S256, ``access_type=offline`` and ``prompt=consent`` so a refresh
token comes back even for a user who consented before) and keeps the verifier sealed in a
pending authorisation; ``finish_gmail_connect`` takes that back, exchanges the code with
``Flow.fetch_token(code=...)``, asks Gmail's ``users.getProfile`` for the address and saves the
account. Google redirects the browser to ``<public_url>/oauth/callback/google`` (register it
as an authorised redirect URI of the OAuth client).

Transport: every Google endpoint we call must be https, whatever OAUTHLIB_INSECURE_TRANSPORT
says, because codes and tokens cross it. The redirect URI may be plain http on loopback (a
developer's ``public_url``): the code is handed to ``fetch_token`` directly, so oauthlib never
parses that URL. Tests serve the Google emulator over https with a test CA
(``INBOX_API_GOOGLE_CA_FILE``).

Nothing here logs or returns a code, verifier or token (except the grant it stores).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import requests
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from app.auth.principal import Principal
from app.events import EventBus
from app.models import Account
from app.services.oauth_state import (
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
    provider_http,
    require_https,
    trusting,
)
from app.settings import Settings
from app.types import Provider
from vault import Secret

GMAIL_SCOPES = ("https://www.googleapis.com/auth/gmail.modify",)
PROFILE_PATH = "/gmail/v1/users/me/profile"


def _client(settings: Settings) -> tuple[str, str]:
    secret = settings.google_client_secret
    if not settings.google_client_id or secret is None or not secret.get_secret_value():
        raise NotConfigured("Gmail is not configured on this server (Google OAuth client)")
    require_https(settings.google_auth_uri, "INBOX_API_GOOGLE_AUTH_URI")
    require_https(settings.google_token_uri, "INBOX_API_GOOGLE_TOKEN_URI")
    require_https(settings.gmail_api_base, "INBOX_API_GMAIL_API_BASE")
    return settings.google_client_id, secret.get_secret_value()


def _flow(settings: Settings, code_verifier: str | None = None) -> Any:
    client_id, client_secret = _client(settings)
    config = {
        "web": {
            "client_id": client_id,
            "client_secret": client_secret,
            "auth_uri": settings.google_auth_uri,
            "token_uri": settings.google_token_uri,
            "redirect_uris": [callback_url(settings, Provider.GMAIL)],
        }
    }
    flow = Flow.from_client_config(
        config,
        scopes=list(GMAIL_SCOPES),
        redirect_uri=callback_url(settings, Provider.GMAIL),
        code_verifier=code_verifier,
        autogenerate_code_verifier=code_verifier is None,
    )
    trusting(flow.oauth2session, settings.google_ca_file)
    return flow


async def start_gmail_connect(
    settings: Settings,
    principal: Principal,
    *,
    return_url: str | None,
    login_hint: str | None,
) -> str:
    """The consent URL to send the user's browser to."""
    state = new_state(settings, principal, return_url)
    flow = _flow(settings)
    extra = {} if login_hint is None else {"login_hint": login_hint}
    url, _ = flow.authorization_url(state=state, access_type="offline", prompt="consent", **extra)
    await save_pending(
        state,
        principal,
        Provider.GMAIL,
        {"code_verifier": flow.code_verifier},
        return_url=return_url,
    )
    return str(url)


async def finish_gmail_connect(
    settings: Settings, events: EventBus, answer: Mapping[str, str]
) -> tuple[Account, Pending]:
    """Complete the flow Google's redirect (``answer``: its query parameters) belongs to."""
    pending = await take_answered(answer, Provider.GMAIL)
    grant = await _exchange(settings, pending, answer["code"])
    address = await _profile_address(settings, grant.access_token, pending)
    account = await save_connected_account(
        pending,
        address=address,
        display_name="",
        grant=grant,
        provider_settings={},
        events=events,
    )
    return account, pending


async def _exchange(settings: Settings, pending: Pending, code: str) -> TokenGrant:
    flow = _flow(settings, code_verifier=pending.flow_values()["code_verifier"])
    try:
        token: dict[str, Any] = await asyncio.to_thread(flow.fetch_token, code=code)
    except Warning:
        # oauthlib raises (not warns) when the user granted fewer scopes than asked.
        raise pending.failed("SCOPE_NOT_GRANTED", "Gmail access was not granted.") from None
    except OAuth2Error:
        raise pending.failed("TOKEN_EXCHANGE_FAILED", "Google refused the sign-in.") from None
    except requests.RequestException:
        raise pending.failed("PROVIDER_UNREACHABLE", "Google could not be reached.") from None
    finally:
        flow.oauth2session.close()
    scopes = token.get("scope") or GMAIL_SCOPES  # oauthlib hands back a list
    granted = set(scopes.split() if isinstance(scopes, str) else scopes)
    if not set(GMAIL_SCOPES) <= granted:
        raise pending.failed("SCOPE_NOT_GRANTED", "Gmail access was not granted.")
    return TokenGrant.from_response(
        token["access_token"], float(token["expires_in"]), token.get("refresh_token")
    )


async def _profile_address(settings: Settings, access_token: Secret, pending: Pending) -> str:
    url = settings.gmail_api_base.rstrip("/") + PROFILE_PATH
    address = (await get_with_token(url, access_token, settings.google_ca_file)).get("emailAddress")
    if not isinstance(address, str) or "@" not in address:
        raise pending.failed("PROFILE_UNAVAILABLE", "Gmail did not say which mailbox this is.")
    return address


async def refresh_google_token(settings: Settings, refresh_token: Secret) -> TokenGrant:
    """A new access token from Google's token endpoint (google-auth ``Credentials.refresh``)."""
    client_id, client_secret = _client(settings)

    def refresh() -> tuple[str, float]:
        credentials: Any = Credentials(  # type: ignore[no-untyped-call]
            None,
            refresh_token=refresh_token.reveal(),
            token_uri=settings.google_token_uri,
            client_id=client_id,
            client_secret=client_secret,
        )
        with trusting(requests.Session(), settings.google_ca_file) as session:
            credentials.refresh(google.auth.transport.requests.Request(session))
        # google-auth keeps a naive UTC expiry on the system clock; carry over what is left.
        expiry: datetime = credentials.expiry
        token: str = credentials.token
        return token, (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()

    try:
        access_token, expires_in = await asyncio.to_thread(refresh)
    except google.auth.exceptions.RefreshError as error:
        details = error.args[1] if len(error.args) > 1 else None
        if isinstance(details, dict) and details.get("error") == "invalid_grant":
            raise GrantRevoked from None
        raise TokenEndpointError("Google refused the refresh", transient=error.retryable) from None
    except google.auth.exceptions.TransportError:
        raise TokenEndpointError("Google could not be reached", transient=True) from None
    return TokenGrant.from_response(access_token, expires_in, None)


async def revoke_google_grant(settings: Settings, token: Secret) -> bool:
    """Revoke the grant ``token`` (refresh or access) belongs to; True when Google confirmed."""
    require_https(settings.google_revoke_uri, "INBOX_API_GOOGLE_REVOKE_URI")
    try:
        async with provider_http(settings.google_ca_file) as http:
            response = await http.post(settings.google_revoke_uri, data={"token": token.reveal()})
    except httpx.HTTPError:
        return False
    return response.status_code == 200
