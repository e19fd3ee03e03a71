"""The steps of a connect as a browser and an API client take them, shared by the tests here."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.models import Account
from app.services.credentials import read_credential
from app.types import AccountId, CredentialKind
from emulators.graph_testing import ServedEmulator
from emulators.microsoft_identity import DirectoryUser, read_form_post
from tests.connect.conftest import PUBLIC_URL, ConnectApp, ServedGoogle

_RESULT = """{ __typename
  ... on ConnectStarted { authorizationUrl }
  ... on MutationError { code message field } }"""
CONNECT_GMAIL = (
    "mutation($returnUrl: String, $loginHint: String) "
    "{ connectGmail(returnUrl: $returnUrl, loginHint: $loginHint) " + _RESULT + " }"
)
CONNECT_MICROSOFT = (
    "mutation($returnUrl: String, $loginHint: String) "
    "{ connectMicrosoft(returnUrl: $returnUrl, loginHint: $loginHint) " + _RESULT + " }"
)
MICROSOFT_CALLBACK = f"{PUBLIC_URL}/oauth/callback/microsoft"
DISCONNECT = """mutation($id: ID!) { disconnectAccount(id: $id) { __typename
  ... on AccountDisconnected { id revokedAtProvider }
  ... on MutationError { code message } } }"""


async def start(app: ConnectApp, token: str, mutation: str, **variables: Any) -> dict[str, Any]:
    """The mutation's result object (ConnectStarted or MutationError)."""
    body = await app.gql(token, mutation, **variables)
    assert "errors" not in body, body
    result: dict[str, Any] = next(iter(body["data"].values()))
    return result


async def authorization_url(app: ConnectApp, token: str, mutation: str, **variables: Any) -> str:
    result = await start(app, token, mutation, **variables)
    assert result["__typename"] == "ConnectStarted", result
    url: str = result["authorizationUrl"]
    return url


async def google_consent(google: ServedGoogle, url: str) -> str:
    """GET the consent URL without following redirects: the URL Google sends the browser to."""
    async with google.client() as browser:
        response = await browser.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    assert location.startswith(f"{PUBLIC_URL}/oauth/callback/google?"), location
    return location


async def microsoft_consent(microsoft: ServedEmulator, url: str) -> tuple[str, dict[str, str]]:
    """GET the sign-in URL: the form_post page's action and fields, as the browser posts them."""
    async with httpx.AsyncClient(verify=microsoft.tls.client_context(), trust_env=False) as browser:
        response = await browser.get(url, follow_redirects=False)
    assert response.status_code == 200, response.text
    action, fields = read_form_post(response.text)
    assert action == MICROSOFT_CALLBACK
    return action, fields


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def consented_gmail(
    app: ConnectApp, google: ServedGoogle, token: str, *, email: str | None = None, **variables: Any
) -> str:
    """A Gmail connect started (for a new emulator user by default) and consented to: the
    callback URL the browser opens next."""
    email = email or google.new_user()
    url = await authorization_url(app, token, CONNECT_GMAIL, loginHint=email, **variables)
    return await google_consent(google, url)


async def signed_in_microsoft(
    app: ConnectApp, microsoft: ServedEmulator, token: str
) -> tuple[DirectoryUser, dict[str, str]]:
    """A Microsoft connect started for a new emulator user who signed in: the user, and the
    fields the browser posts to the callback next."""
    user = microsoft.new_mailbox().user
    url = await authorization_url(app, token, CONNECT_MICROSOFT, loginHint=user.username)
    _, fields = await microsoft_consent(microsoft, url)
    return user, fields


async def connect_gmail_account(app: ConnectApp, google: ServedGoogle, token: str) -> Account:
    """A Gmail account connected through the whole flow, for a new emulator user."""
    email = google.new_user()
    page = await app.http.get(await consented_gmail(app, google, token, email=email))
    assert page.status_code == 200, page.text
    return await Account.get(address=email)


async def connect_microsoft_account(
    app: ConnectApp, microsoft: ServedEmulator, token: str
) -> Account:
    """A Microsoft account connected through the whole flow, for a new emulator user."""
    user, fields = await signed_in_microsoft(app, microsoft, token)
    page = await app.http.post(MICROSOFT_CALLBACK, data=fields)
    assert page.status_code == 200, page.text
    return await Account.get(address=user.username)


async def stored_access_token(account_id: AccountId) -> str:
    """The access token sealed in the vault for the account."""
    sealed = await read_credential(account_id, CredentialKind.OAUTH_ACCESS_TOKEN)
    assert sealed is not None
    token: str = json.loads(sealed.reveal())["token"]
    return token
