"""emulators.google_identity: the real google-auth-oauthlib Flow and google-auth refresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth.transport.requests
import httpx
import pytest
import trustme
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

from emulators.gmail_clock import ManualClock
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import RunningServer, serve_in_thread

ME = "alice@example.com"
CLIENT, SECRET = "client-1.apps.example", "client-secret"
REDIRECT = "http://127.0.0.1:9/oauth/callback"
NO_CA = ssl.create_default_context()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    return paths


@pytest.fixture(scope="module")
def served(
    tls: dict[str, str],
) -> Iterator[tuple[GoogleEmulator, ManualClock, RunningServer]]:
    clock = ManualClock(1_700_000_000.0)
    emulator = GoogleEmulator(seed=4, clock=clock, access_token_lifetime=300)
    # https, as in production: oauthlib refuses plain http token endpoints.
    with serve_in_thread(emulator.app, ssl_certfile=tls["cert"], ssl_keyfile=tls["key"]) as server:
        yield emulator, clock, server


@pytest.fixture
def emulator(
    served: tuple[GoogleEmulator, ManualClock, RunningServer],
    tls: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> GoogleEmulator:
    # requests (under oauthlib and google-auth) takes its CA bundle from the environment here.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls["ca"])
    served[0].reset()
    served[0].register_client(CLIENT, SECRET, [REDIRECT])
    served[0].add_user(ME)
    served[0].add_user("bob@example.org")
    return served[0]


@pytest.fixture
def clock(served: tuple[GoogleEmulator, ManualClock, RunningServer]) -> ManualClock:
    return served[1]


@pytest.fixture
def base_url(served: tuple[GoogleEmulator, ManualClock, RunningServer]) -> str:
    return served[2].base_url


@pytest.fixture
def http(tls: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=tls["ca"])) as client:
        yield client


def new_flow(emulator: GoogleEmulator, base_url: str, scopes: list[str]) -> Flow:
    config = emulator.client_config(base_url, CLIENT)
    return Flow.from_client_config(config, scopes=scopes, redirect_uri=REDIRECT)


def consent(http: httpx.Client, url: str) -> dict[str, str]:
    """What the browser would bring back to the redirect URI."""
    response = http.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(emulator: GoogleEmulator, base_url: str, http: httpx.Client, **params: str) -> Flow:
    flow = new_flow(emulator, base_url, [SCOPE_FULL])
    url, state = flow.authorization_url(**params)
    answer = consent(http, url)
    assert answer["state"] == state
    flow.fetch_token(code=answer["code"])
    return flow


def stored_credentials(refresh_token: str | None, token_uri: str, scopes: list[str]) -> Any:
    """Credentials as an app rebuilds them from a stored refresh token (google-auth is untyped)."""
    return Credentials(  # type: ignore[no-untyped-call]
        None,
        refresh_token=refresh_token,
        token_uri=token_uri,
        client_id=CLIENT,
        client_secret=SECRET,
        scopes=scopes,
    )


def profile_status(http: httpx.Client, base_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return http.get(f"{base_url}/gmail/v1/users/me/profile", headers=headers).status_code


def test_flow_end_to_end_then_refresh(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    flow = authorize(emulator, base_url, http, login_hint=ME)
    credentials = flow.credentials
    assert credentials.token.startswith("ya29.")
    assert credentials.refresh_token
    assert credentials.granted_scopes == [SCOPE_FULL]
    profile = http.get(
        f"{base_url}/gmail/v1/users/me/profile",
        headers={"Authorization": f"Bearer {credentials.token}"},
    ).json()
    assert profile["emailAddress"] == ME
    first_token = credentials.token
    credentials.refresh(google.auth.transport.requests.Request())
    assert credentials.token != first_token
    assert credentials.refresh_token == flow.credentials.refresh_token  # kept, not rotated
    assert profile_status(http, base_url, credentials.token) == 200


def test_default_user_consents_without_login_hint(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    token = authorize(emulator, base_url, http).credentials.token
    info = emulator.identity.authenticate(token)
    assert info is not None
    assert info.email == ME
    bob = authorize(emulator, base_url, http, login_hint="bob@example.org").credentials.token
    info = emulator.identity.authenticate(bob)
    assert info is not None
    assert info.email == "bob@example.org"


def test_revoked_grant_makes_refresh_fail_with_invalid_grant(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    credentials = authorize(emulator, base_url, http, login_hint=ME).credentials
    assert emulator.identity.revoke(ME) == 1
    assert profile_status(http, base_url, credentials.token) == 401
    with pytest.raises(RefreshError) as refused:
        credentials.refresh(google.auth.transport.requests.Request())
    assert "invalid_grant" in str(refused.value)
    assert "Token has been expired or revoked." in str(refused.value)


def test_expired_access_token_answers_401_and_a_refresh_recovers(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client, clock: ManualClock
) -> None:
    credentials = authorize(emulator, base_url, http, login_hint=ME).credentials
    clock.advance(301)  # this emulator's tokens live 300 s
    response = http.get(
        f"{base_url}/gmail/v1/users/me/profile",
        headers={"Authorization": f"Bearer {credentials.token}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    credentials.refresh(google.auth.transport.requests.Request())
    assert profile_status(http, base_url, credentials.token) == 200
    emulator.identity.expire_access_tokens(ME)
    assert profile_status(http, base_url, credentials.token) == 401


def test_refresh_token_comes_with_the_first_consent_only_unless_prompted(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    first = authorize(emulator, base_url, http, login_hint=ME).credentials
    again = authorize(emulator, base_url, http, login_hint=ME).credentials
    forced = authorize(emulator, base_url, http, login_hint=ME, prompt="consent").credentials
    online = authorize(emulator, base_url, http, login_hint="bob@example.org", access_type="online")
    assert first.refresh_token
    assert again.refresh_token is None
    assert forced.refresh_token
    assert forced.refresh_token != first.refresh_token
    assert online.credentials.refresh_token is None
    for credentials in (first, forced):  # both refresh tokens stay valid
        credentials.refresh(google.auth.transport.requests.Request())


def test_codes_are_single_use_and_pkce_is_checked(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    flow = new_flow(emulator, base_url, [SCOPE_FULL])
    url, _ = flow.authorization_url(login_hint=ME)
    code = consent(http, url)["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT,
        "client_secret": SECRET,
        "code_verifier": "x" * 64,
    }
    wrong_verifier = http.post(f"{base_url}/token", data=form)
    assert wrong_verifier.status_code == 400
    assert wrong_verifier.json()["error"] == "invalid_grant"
    form["code_verifier"] = flow.code_verifier or ""
    reused = http.post(f"{base_url}/token", data=form)  # the failed attempt used the code up
    assert reused.json() == {"error": "invalid_grant", "error_description": "Bad Request"}
    url, _ = flow.authorization_url(login_hint=ME)
    form["code"] = consent(http, url)["code"]
    form["code_verifier"] = flow.code_verifier or ""
    del form["client_secret"]
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    good = http.post(f"{base_url}/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert good.status_code == 200
    assert good.json()["token_type"] == "Bearer"
    assert good.json()["expires_in"] == 300
    assert http.post(f"{base_url}/token", data=form).status_code == 401  # no client secret


def test_authorization_request_errors(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    auth = f"{base_url}/o/oauth2/auth"
    good = {
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE_FULL,
        "state": "s1",
    }
    assert http.get(auth, params={**good, "client_id": "nobody"}).status_code == 401
    mismatch = http.get(auth, params={**good, "redirect_uri": "http://evil.example/cb"})
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text
    assert http.get(auth, params={**good, "login_hint": "who@example.com"}).status_code == 400
    no_scope = consent(http, str(httpx.URL(auth, params={**good, "scope": ""})))
    assert no_scope["error"] == "invalid_request"
    assert no_scope["state"] == "s1"
    token_type = consent(http, str(httpx.URL(auth, params={**good, "response_type": "token"})))
    assert token_type["error"] == "unsupported_response_type"
    emulator.add_user("carol@example.net", approve=False)
    declined = consent(
        http, str(httpx.URL(auth, params={**good, "login_hint": "carol@example.net"}))
    )
    assert declined["error"] == "access_denied"


def test_revoke_endpoint_revokes_the_whole_grant(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    credentials = authorize(emulator, base_url, http, login_hint=ME).credentials
    revoked = http.post(f"{base_url}/revoke", params={"token": credentials.refresh_token})
    assert revoked.status_code == 200
    assert profile_status(http, base_url, credentials.token) == 401
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": credentials.refresh_token,
        "client_id": CLIENT,
        "client_secret": SECRET,
    }
    refused = http.post(f"{base_url}/token", data=refresh)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    again = http.post(f"{base_url}/revoke", data={"token": credentials.refresh_token or ""})
    assert again.status_code == 400
    # After a revocation the next consent is a first consent again: a new refresh token.
    assert authorize(emulator, base_url, http, login_hint=ME).credentials.refresh_token


def test_openid_scope_adds_an_id_token_and_userinfo_answers(
    emulator: GoogleEmulator, base_url: str, http: httpx.Client
) -> None:
    tokens = emulator.identity.issue_tokens(ME, CLIENT, ["openid", "email", SCOPE_FULL])
    assert tokens.id_token
    header, payload, signature = tokens.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["email"] == ME
    assert claims["aud"] == CLIENT
    assert claims["iss"] == "https://accounts.google.com"
    mac = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).decode().rstrip("=") == signature
    info = http.get(
        f"{base_url}/oauth2/v3/userinfo",
        headers={"Authorization": f"Bearer {tokens.access_token}"},
    ).json()
    assert info["email"] == ME
    assert info["sub"] == claims["sub"]


def test_refresh_may_narrow_but_not_widen_scopes(emulator: GoogleEmulator, base_url: str) -> None:
    readonly = "https://www.googleapis.com/auth/gmail.readonly"
    tokens = emulator.identity.issue_tokens(ME, CLIENT, [SCOPE_FULL, readonly])
    token_uri = emulator.urls(base_url).token_uri
    narrow = stored_credentials(tokens.refresh_token, token_uri, [readonly])
    narrow.refresh(google.auth.transport.requests.Request())
    info = emulator.identity.authenticate(narrow.token)
    assert info is not None
    assert info.scopes == {readonly}
    calendar = "https://www.googleapis.com/auth/calendar"
    wide = stored_credentials(tokens.refresh_token, token_uri, [readonly, calendar])
    with pytest.raises(RefreshError, match="invalid_scope"):
        wide.refresh(google.auth.transport.requests.Request())


def test_plain_http_works_with_oauthlib_insecure_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Local development without TLS: oauthlib's own switch, as its documentation says.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    emulator = GoogleEmulator(seed=9)
    emulator.register_client(CLIENT, SECRET, [REDIRECT])
    emulator.add_user(ME)
    with serve_in_thread(emulator.app) as server, httpx.Client(verify=NO_CA) as http:
        flow = authorize(emulator, server.base_url, http)
        assert flow.credentials.refresh_token
