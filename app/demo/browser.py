"""Connecting the demo's mailboxes the way a user's browser does it, over real HTTP.

For each provider: the API client asks this server for the consent URL (``connectGmail`` /
``connectMicrosoft`` with the owner's token), then the "browser" (an httpx client that trusts
the demo CA, with no token of ours) opens that URL at the emulator, which approves at once, and
brings the answer back to ``/oauth/callback/...`` on this server: Google by a redirect the
browser follows, Microsoft by a ``form_post`` page the browser submits. The server exchanges
the code, stores the sealed tokens and creates the account, exactly as with the real providers.

The browser never sees a token of ours and the API client never sees the provider's code.
"""

from __future__ import annotations

from typing import Any

import httpx

from emulators.microsoft_identity import read_form_post

_CONNECT = """mutation Connect($loginHint: String) {{
  {field}(loginHint: $loginHint) {{
    ... on ConnectStarted {{ authorizationUrl }}
    ... on MutationError {{ code message }}
  }}
}}"""


class ConnectError(Exception):
    """A step of a connect flow did not answer as it should (the message says which)."""


async def graphql(
    api: httpx.AsyncClient, token: str, query: str, **variables: Any
) -> dict[str, Any]:
    """POST a GraphQL operation with the bearer token; its ``data``, or ``ConnectError``."""
    response = await api.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise ConnectError(f"GraphQL answered {response.status_code}: {body.get('errors')}")
    data: dict[str, Any] = body["data"]
    return data


async def _authorization_url(
    api: httpx.AsyncClient, token: str, field: str, login_hint: str
) -> str:
    result = (await graphql(api, token, _CONNECT.format(field=field), loginHint=login_hint))[field]
    if "authorizationUrl" not in result:
        raise ConnectError(f"{field}: {result.get('code')} {result.get('message')}")
    url: str = result["authorizationUrl"]
    return url


def _connected(page: httpx.Response, provider: str) -> None:
    if page.status_code != 200 or "Account connected" not in page.text:
        raise ConnectError(f"the {provider} callback answered {page.status_code}")


async def connect_gmail(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, token: str, address: str
) -> None:
    """Connect the Gmail mailbox ``address``: mutation, consent, redirect to our callback."""
    url = await _authorization_url(api, token, "connectGmail", address)
    consent = await browser.get(url)
    if consent.status_code != 302:
        raise ConnectError(f"Google's consent page answered {consent.status_code}")
    _connected(await browser.get(consent.headers["location"]), "Google")


async def connect_microsoft(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, token: str, address: str
) -> None:
    """Connect the Microsoft mailbox ``address``: mutation, sign-in, form post to our callback."""
    url = await _authorization_url(api, token, "connectMicrosoft", address)
    sign_in = await browser.get(url)
    if sign_in.status_code != 200:
        raise ConnectError(f"Microsoft's sign-in page answered {sign_in.status_code}")
    action, fields = read_form_post(sign_in.text)
    _connected(await browser.post(action, data=fields), "Microsoft")
