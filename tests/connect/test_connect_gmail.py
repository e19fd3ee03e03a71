"""connectGmail -> Google (emulated, https) -> /oauth/callback/google, with the real Flow."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from app import clock
from app.events import AccountChanged, InProcessBus
from app.models import (
    Account,
    ApiToken,
    ChangeLogEntry,
    Credential,
    PendingAuthorization,
    SyncState,
)
from app.services.credentials import read_credential
from app.services.tokens import revoke_token
from app.settings import Settings
from app.types import AccountId, AccountStatus, ChangeKind, CredentialKind, Provider, SyncPhase
from emulators.graph_testing import ServedEmulator
from resolvers.ids import encode_id
from tests.connect.conftest import (
    RETURN_ORIGIN,
    ConnectApp,
    ServedGoogle,
    connect_settings,
    open_connect_app,
)
from tests.connect.flows import (
    CONNECT_GMAIL,
    CONNECT_MICROSOFT,
    authorization_url,
    consented_gmail,
    google_consent,
    query_of,
    start,
)
from tests.factories import make_account, make_owner, make_token
from vault import KeyRing

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"


async def test_full_connect_creates_the_account_with_sealed_tokens_and_due_sync(
    connect_app: ConnectApp, google: ServedGoogle, events: InProcessBus
) -> None:
    made = await make_owner()
    email = google.new_user()
    url = await authorization_url(connect_app, made.token, CONNECT_GMAIL, loginHint=email)

    asked = query_of(url)
    assert url.startswith(google.emulator.urls(google.server.base_url).auth_uri + "?")
    assert asked["access_type"] == "offline"
    assert asked["prompt"] == "consent"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert asked["scope"] == GMAIL_MODIFY
    assert asked["redirect_uri"] == "http://testserver/oauth/callback/google"
    assert "code_verifier" not in asked
    [pending] = await PendingAuthorization.filter(owner_id=made.owner.id)
    assert pending.state_digest == hashlib.sha256(asked["state"].encode()).hexdigest()
    assert asked["state"].encode() not in bytes(pending.sealed_flow)

    callback = await google_consent(google, url)
    code = query_of(callback)["code"]
    async with events.subscribe() as queue:
        page = await connect_app.http.get(callback)

    assert page.status_code == 200, page.text
    assert "Account connected — you can close this window" in page.text
    assert email in page.text
    assert code not in page.text
    assert asked["state"] not in page.text
    assert page.headers["cache-control"] == "no-store"
    [account] = await Account.filter(owner_id=made.owner.id)
    assert (account.provider, account.address, account.status) == (
        Provider.GMAIL,
        email,
        AccountStatus.ACTIVE,
    )
    assert not await PendingAuthorization.filter(owner_id=made.owner.id).exists()

    rows = {row.kind: bytes(row.ciphertext) for row in await Credential.filter(account=account)}
    assert set(rows) == {CredentialKind.OAUTH_REFRESH_TOKEN, CredentialKind.OAUTH_ACCESS_TOKEN}
    refresh_token = await read_credential(AccountId(account.id), CredentialKind.OAUTH_REFRESH_TOKEN)
    assert refresh_token is not None
    assert refresh_token.reveal().startswith("1//")
    assert refresh_token.reveal().encode() not in rows[CredentialKind.OAUTH_REFRESH_TOKEN]
    assert b"ya29." not in rows[CredentialKind.OAUTH_ACCESS_TOKEN]
    assert refresh_token.reveal() not in page.text

    state = await SyncState.get(account_id=account.id)
    assert state.phase == SyncPhase.PENDING
    assert state.next_run_at is not None
    assert state.next_run_at <= clock.now()

    change = await ChangeLogEntry.get(account_id=account.id)
    assert change.kind == ChangeKind.ACCOUNT_STATUS
    assert change.detail == {"status": "active", "reason": "CONNECTED"}
    assert queue.get_nowait() == AccountChanged(made.owner.id, account.id, change.id)


async def test_a_state_is_used_once(connect_app: ConnectApp, google: ServedGoogle) -> None:
    made = await make_owner()
    callback = await consented_gmail(connect_app, google, made.token)
    assert (await connect_app.http.get(callback)).status_code == 200
    await Account.filter(owner_id=made.owner.id).delete()

    again = await connect_app.http.get(callback)

    assert again.status_code == 400
    assert "not valid or was already used" in again.text
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_an_unknown_state_is_refused(connect_app: ConnectApp, google: ServedGoogle) -> None:
    made = await make_owner()
    callback = await consented_gmail(connect_app, google, made.token)
    state = query_of(callback)["state"]

    forged = await connect_app.http.get(callback.replace(state, state[:-4] + "AAAA"))
    missing = await connect_app.http.get(callback.replace(f"state={state}", "state="))

    for page in (forged, missing):
        assert page.status_code == 400
        assert "Could not connect the account" in page.text
    assert not await Account.filter(owner_id=made.owner.id).exists()
    # The real state is still usable: forged ones did not consume it.
    assert (await connect_app.http.get(callback)).status_code == 200


async def test_an_expired_state_is_refused(connect_app: ConnectApp, google: ServedGoogle) -> None:
    made = await make_owner()
    callback = await consented_gmail(connect_app, google, made.token)
    clock.travel(timedelta(minutes=10, seconds=1))

    page = await connect_app.http.get(callback)

    assert page.status_code == 400
    assert "This sign-in link has expired." in page.text
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_a_gmail_state_does_not_complete_a_microsoft_callback(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    answer = query_of(await consented_gmail(connect_app, google, made.token))

    page = await connect_app.http.post("/oauth/callback/microsoft", data=answer)

    assert page.status_code == 400
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_a_revoked_api_token_cannot_finish_what_it_started(
    connect_app: ConnectApp, google: ServedGoogle, events: InProcessBus
) -> None:
    made = await make_owner()
    token = await make_token(made.owner)
    callback = await consented_gmail(connect_app, google, token)
    row = await ApiToken.get(owner_id=made.owner.id, name="test token")
    services = connect_app.services
    await revoke_token(made.owner.id, row.id, authenticator=services.authenticator, events=events)

    page = await connect_app.http.get(callback)

    assert page.status_code == 400
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_return_url_gets_the_account_id_or_the_error_code(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    callback = await consented_gmail(
        connect_app, google, made.token, returnUrl=f"{RETURN_ORIGIN}/mailboxes?tab=new"
    )
    done = await connect_app.http.get(callback)

    assert done.status_code == 303
    [account] = await Account.filter(owner_id=made.owner.id)
    assert done.headers["location"] == (
        f"{RETURN_ORIGIN}/mailboxes?tab=new&status=connected"
        f"&account={encode_id('Account', account.id)}"
    )

    declined = google.new_user(approve=False)
    callback = await consented_gmail(
        connect_app, google, made.token, email=declined, returnUrl=RETURN_ORIGIN
    )
    refused = await connect_app.http.get(callback)

    assert refused.status_code == 303
    assert refused.headers["location"] == f"{RETURN_ORIGIN}?status=error&error=ACCESS_DENIED"
    assert await Account.filter(owner_id=made.owner.id).count() == 1


async def test_declined_consent_without_return_url_shows_a_page(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    callback = await consented_gmail(
        connect_app, google, made.token, email=google.new_user(approve=False)
    )

    page = await connect_app.http.get(callback)

    assert page.status_code == 400
    assert "Access to the mailbox was not granted." in page.text
    assert not await Account.filter(owner_id=made.owner.id).exists()


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/",
        "https://app.example.com.evil.example/",
        "https://user@app.example.com/",
        "javascript:alert(1)",
        f"{RETURN_ORIGIN}/" + "x" * 2000,
    ],
)
async def test_return_url_must_be_on_an_allowed_origin(
    connect_app: ConnectApp, return_url: str
) -> None:
    made = await make_owner()

    result = await start(connect_app, made.token, CONNECT_GMAIL, returnUrl=return_url)

    assert (result["__typename"], result["code"], result["field"]) == (
        "MutationError",
        "BAD_USER_INPUT",
        "returnUrl",
    )
    assert not await PendingAuthorization.filter(owner_id=made.owner.id).exists()


async def test_a_token_limited_to_some_accounts_cannot_connect(connect_app: ConnectApp) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    narrow = await make_token(made.owner, account_ids=[account.id])

    result = await start(connect_app, narrow, CONNECT_GMAIL)

    assert (result["__typename"], result["code"]) == ("MutationError", "FORBIDDEN")


async def test_reconnecting_revives_the_same_account(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    email = google.new_user()
    await connect_app.http.get(await consented_gmail(connect_app, google, made.token, email=email))
    [account] = await Account.filter(owner_id=made.owner.id)
    first = await read_credential(AccountId(account.id), CredentialKind.OAUTH_REFRESH_TOKEN)
    await Account.filter(id=account.id).update(
        status=AccountStatus.NEEDS_REAUTH, status_reason="INVALID_GRANT"
    )
    await SyncState.filter(account_id=account.id).update(
        phase=SyncPhase.STOPPED, cursor="1234", next_run_at=None, consecutive_failures=3
    )

    callback = await consented_gmail(connect_app, google, made.token, email=email)
    assert (await connect_app.http.get(callback)).status_code == 200

    [again] = await Account.filter(owner_id=made.owner.id)
    assert again.id == account.id
    assert (again.status, again.status_reason) == (AccountStatus.ACTIVE, None)
    second = await read_credential(AccountId(account.id), CredentialKind.OAUTH_REFRESH_TOKEN)
    assert second is not None
    assert second != first
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.cursor, state.consecutive_failures) == (
        SyncPhase.INCREMENTAL,
        "1234",
        0,
    )
    assert state.next_run_at is not None
    assert state.next_run_at <= clock.now()


@pytest.mark.parametrize(
    ("setting", "connect"),
    [
        ("google_token_uri", CONNECT_GMAIL),
        ("gmail_api_base", CONNECT_GMAIL),
        ("graph_api_base", CONNECT_MICROSOFT),
    ],
)
async def test_an_http_endpoint_is_refused_even_with_oauthlib_insecure_transport(
    settings_for_connect: Settings,
    google: ServedGoogle,
    microsoft: ServedEmulator,
    ring: KeyRing,
    events: InProcessBus,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    connect: str,
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    url = str(getattr(settings_for_connect, setting)).replace("https://", "http://")
    assert url.startswith("http://127.0.0.1:")
    insecure = connect_settings(settings_for_connect, google, microsoft, **{setting: url})
    made = await make_owner()
    async for app in open_connect_app(insecure, events):
        body = await app.gql(made.token, connect)

    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "NOT_CONFIGURED"
    assert f"INBOX_API_{setting.upper()} must be an https URL" in error["message"]


async def test_without_a_google_client_connecting_is_not_configured(
    settings_for_connect: Settings,
    google: ServedGoogle,
    microsoft: ServedEmulator,
    ring: KeyRing,
    events: InProcessBus,
) -> None:
    bare = connect_settings(settings_for_connect, google, microsoft, google_client_id=None)
    made = await make_owner()
    async for app in open_connect_app(bare, events):
        body = await app.gql(made.token, CONNECT_GMAIL)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_CONFIGURED"]
