"""The emulated identity platform, driven by the real MSAL ConfidentialClientApplication."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msal
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from emulators.graph_testing import (
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_REDIRECT_URI,
    ServedEmulator,
    serve_for_tests,
)
from emulators.microsoft_identity import DirectoryUser, read_form_post

SCOPES = ["https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/User.Read"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_for_tests(tmp_path_factory.mktemp("identity-tls")) as served:
        yield served


@pytest.fixture
def session(served: ServedEmulator) -> Iterator[requests.Session]:
    """What MSAL needs: verify the test CA, and ignore REQUESTS_CA_BUNDLE (ENVIRONMENT.md)."""
    with requests.Session() as http:
        http.verify = str(served.tls.ca_path)
        http.trust_env = False
        yield http


@pytest.fixture
def msal_app(
    served: ServedEmulator, session: requests.Session
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        TEST_CLIENT_ID,
        client_credential=TEST_CLIENT_SECRET,
        authority=served.running.authority(),
        instance_discovery=False,
        validate_authority=False,
        http_client=session,
    )


@pytest.fixture
def user(served: ServedEmulator) -> DirectoryUser:
    return served.new_mailbox().user


def sign_in(
    app: msal.ConfidentialClientApplication, session: requests.Session, user: DirectoryUser
) -> dict[str, Any]:
    """The browser's part, with response_mode=form_post (what MSAL recommends)."""
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri=TEST_REDIRECT_URI, login_hint=user.username, response_mode="form_post"
    )
    page = session.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200
    action, fields = read_form_post(page.text)
    assert action == TEST_REDIRECT_URI
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, fields)
    return result


def test_openid_configuration_points_at_this_https_server(
    served: ServedEmulator, session: requests.Session
) -> None:
    authority = served.running.authority()
    config = session.get(f"{authority}/v2.0/.well-known/openid-configuration").json()
    assert config["authorization_endpoint"] == f"{authority}/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{authority}/oauth2/v2.0/token"
    assert config["issuer"] == f"{authority}/v2.0"
    unknown = session.get(
        f"{served.running.base_url}/nowhere/v2.0/.well-known/openid-configuration"
    )
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [90002]


def test_auth_code_flow_with_pkce_then_silent_refresh(
    served: ServedEmulator,
    msal_app: msal.ConfidentialClientApplication,
    session: requests.Session,
    user: DirectoryUser,
) -> None:
    result = sign_in(msal_app, session, user)

    assert "error" not in result, result
    assert result["token_type"] == "Bearer"
    assert result["refresh_token"]
    claims = result["id_token_claims"]
    assert (claims["oid"], claims["tid"]) == (user.oid, served.emulator.tenant_id)
    assert claims["preferred_username"] == user.username
    assert claims["aud"] == TEST_CLIENT_ID
    [account] = msal_app.get_accounts(username=user.username)
    assert account["home_account_id"] == f"{user.oid}.{served.emulator.tenant_id}"

    refreshed = msal_app.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    assert refreshed is not None
    assert "error" not in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    with served.graph_client(refreshed["access_token"]) as graph:
        me = graph.get("me")
    assert me.status_code == 200
    assert me.json()["mail"] == user.username


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")
def test_query_response_mode_redirects_with_code_and_state(
    msal_app: msal.ConfidentialClientApplication, session: requests.Session, user: DirectoryUser
) -> None:
    flow = msal_app.initiate_auth_code_flow(
        SCOPES, redirect_uri=TEST_REDIRECT_URI, login_hint=user.username
    )
    redirect = session.get(flow["auth_uri"], allow_redirects=False)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == TEST_REDIRECT_URI
    answer = dict(parse_qsl(location.query))
    assert answer["state"] == flow["state"]
    client_info = json.loads(base64.urlsafe_b64decode(answer["client_info"] + "=="))
    assert client_info == {"uid": user.oid, "utid": user.tenant_id}

    result = msal_app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result
    again = msal_app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)
    assert "access_token" in again, again


def test_revoked_grant_answers_invalid_grant(
    served: ServedEmulator,
    msal_app: msal.ConfidentialClientApplication,
    session: requests.Session,
    user: DirectoryUser,
) -> None:
    result = sign_in(msal_app, session, user)
    served.emulator.revoke_grants(user.oid)

    refused = msal_app.acquire_token_by_refresh_token(result["refresh_token"], SCOPES)

    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [50173]
    assert refused["error_description"].startswith("AADSTS50173:")


def test_code_verifier_must_match_the_challenge(
    msal_app: msal.ConfidentialClientApplication, session: requests.Session, user: DirectoryUser
) -> None:
    flow = msal_app.initiate_auth_code_flow(
        SCOPES, redirect_uri=TEST_REDIRECT_URI, login_hint=user.username, response_mode="form_post"
    )
    _, fields = read_form_post(session.get(flow["auth_uri"]).text)
    flow["code_verifier"] = "a" * 64

    refused = msal_app.acquire_token_by_auth_code_flow(flow, fields)

    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [501481]


def test_a_code_is_redeemed_once(
    served: ServedEmulator, session: requests.Session, user: DirectoryUser
) -> None:
    form = _authorize_by_hand(served, session, user)
    token_url = f"{served.running.authority()}/oauth2/v2.0/token"
    auth = (TEST_CLIENT_ID, TEST_CLIENT_SECRET)

    first = session.post(token_url, data=form, auth=auth)
    second = session.post(token_url, data=form, auth=auth)
    wrong_secret = session.post(token_url, data=form, auth=(TEST_CLIENT_ID, "nope"))

    assert first.status_code == 200
    assert "refresh_token" not in first.json()  # no offline_access asked
    assert (second.status_code, second.json()["error_codes"]) == (400, [54005])
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")


def _authorize_by_hand(
    served: ServedEmulator, session: requests.Session, user: DirectoryUser
) -> dict[str, str]:
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    redirect = session.get(
        f"{served.running.authority()}/oauth2/v2.0/authorize",
        params={
            "client_id": TEST_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": TEST_REDIRECT_URI,
            "scope": "openid Mail.Read",
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
            "login_hint": user.username,
        },
        allow_redirects=False,
    )
    code = dict(parse_qsl(urlsplit(redirect.headers["Location"]).query))["code"]
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": TEST_REDIRECT_URI,
        "code_verifier": verifier,
    }


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, "AADSTS50011"),
        ({"client_id": "unknown-app"}, "AADSTS700016"),
    ],
)
def test_untrustworthy_authorize_requests_get_an_error_page(
    served: ServedEmulator, session: requests.Session, override: dict[str, str], expected: str
) -> None:
    params = {
        "client_id": TEST_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": TEST_REDIRECT_URI,
        "scope": "openid",
    } | override
    page = session.get(
        f"{served.running.authority()}/oauth2/v2.0/authorize", params=params, allow_redirects=False
    )
    assert page.status_code == 400
    assert expected in page.text


def test_missing_pkce_is_sent_back_as_an_error(
    served: ServedEmulator, session: requests.Session
) -> None:
    redirect = session.get(
        f"{served.running.authority()}/oauth2/v2.0/authorize",
        params={
            "client_id": TEST_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": TEST_REDIRECT_URI,
            "scope": "openid",
            "state": "s1",
        },
        allow_redirects=False,
    )
    answer = dict(parse_qsl(urlsplit(redirect.headers["Location"]).query))
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "s1"


def test_expired_access_tokens_are_refused_by_graph(served: ServedEmulator) -> None:
    mailbox = served.new_mailbox()
    served.emulator.expire_access_tokens(mailbox.oid)
    with served.graph_client(mailbox.token) as graph:
        answer = graph.get("me/mailFolders")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "expired" in answer.json()["error"]["message"]


def test_tokens_are_signed_by_the_published_key(
    served: ServedEmulator,
    msal_app: msal.ConfidentialClientApplication,
    session: requests.Session,
    user: DirectoryUser,
) -> None:
    id_token = sign_in(msal_app, session, user)["id_token"]
    [key] = httpx.get(
        f"{served.running.authority()}/discovery/v2.0/keys",
        verify=served.tls.client_context(),
    ).json()["keys"]

    def number(field: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(key[field] + "=="), "big")

    public_key = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    header, payload, signature = id_token.split(".")
    public_key.verify(
        base64.urlsafe_b64decode(signature + "=="),
        f"{header}.{payload}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


@pytest.mark.parametrize("tenant", ["organizations", "common", "emulator.onmicrosoft.com"])
def test_other_authority_forms_work_with_msal(
    served: ServedEmulator, session: requests.Session, user: DirectoryUser, tenant: str
) -> None:
    app = msal.ConfidentialClientApplication(
        TEST_CLIENT_ID,
        client_credential=TEST_CLIENT_SECRET,
        authority=served.running.authority(tenant),
        instance_discovery=False,
        validate_authority=False,
        http_client=session,
    )
    result = sign_in(app, session, user)
    assert result["id_token_claims"]["tid"] == served.emulator.tenant_id
    [account] = app.get_accounts()
    refreshed = app.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed
