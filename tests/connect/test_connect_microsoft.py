"""connectMicrosoft -> the identity platform (emulated, https) -> POST /oauth/callback/microsoft,
with the real MSAL ConfidentialClientApplication and response_mode=form_post."""

from __future__ import annotations

from app import clock
from app.models import Account, Credential, PendingAuthorization, SyncState
from app.services.credentials import read_credential
from app.types import AccountId, AccountStatus, CredentialKind, Provider, SyncPhase
from emulators.graph_testing import ServedEmulator
from tests.connect.conftest import ConnectApp
from tests.connect.flows import (
    CONNECT_MICROSOFT,
    MICROSOFT_CALLBACK,
    authorization_url,
    microsoft_consent,
    query_of,
    signed_in_microsoft,
)
from tests.factories import make_owner


async def test_full_connect_with_form_post(
    connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    made = await make_owner()
    user = microsoft.new_mailbox().user
    url = await authorization_url(
        connect_app, made.token, CONNECT_MICROSOFT, loginHint=user.username
    )

    asked = query_of(url)
    assert url.startswith(f"{microsoft.running.authority()}/oauth2/v2.0/authorize?")
    assert asked["response_mode"] == "form_post"
    assert asked["code_challenge_method"] == "S256"
    assert "offline_access" in asked["scope"].split()
    assert "https://graph.microsoft.com/Mail.ReadWrite" in asked["scope"].split()
    assert asked["redirect_uri"] == "http://testserver/oauth/callback/microsoft"
    assert "code_verifier" not in asked
    action, fields = await microsoft_consent(microsoft, url)
    assert fields["state"] == asked["state"]

    page = await connect_app.http.post(action, data=fields)

    assert page.status_code == 200, page.text
    assert "Account connected — you can close this window" in page.text
    assert fields["code"] not in page.text
    [account] = await Account.filter(owner_id=made.owner.id)
    assert (account.provider, account.address, account.status) == (
        Provider.GRAPH,
        user.username,
        AccountStatus.ACTIVE,
    )
    assert account.display_name == user.display_name
    assert account.provider_settings == {"tenant_id": user.tenant_id, "object_id": user.oid}
    assert not await PendingAuthorization.filter(owner_id=made.owner.id).exists()

    refresh_token = await read_credential(AccountId(account.id), CredentialKind.OAUTH_REFRESH_TOKEN)
    assert refresh_token is not None
    [sealed] = await Credential.filter(account=account, kind=CredentialKind.OAUTH_REFRESH_TOKEN)
    assert refresh_token.reveal().encode() not in bytes(sealed.ciphertext)
    state = await SyncState.get(account_id=account.id)
    assert state.phase == SyncPhase.PENDING
    assert state.next_run_at is not None
    assert state.next_run_at <= clock.now()

    replay = await connect_app.http.post(action, data=fields)
    assert replay.status_code == 400
    assert "not valid or was already used" in replay.text


async def test_a_query_answer_is_accepted_too(
    connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    made = await make_owner()
    user, fields = await signed_in_microsoft(connect_app, microsoft, made.token)

    page = await connect_app.http.get(MICROSOFT_CALLBACK, params=fields)

    assert page.status_code == 200, page.text
    assert await Account.filter(owner_id=made.owner.id, address=user.username).exists()


async def test_an_error_answer_creates_nothing(
    connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    made = await make_owner()
    _, fields = await signed_in_microsoft(connect_app, microsoft, made.token)
    answer = {"state": fields["state"], "error": "access_denied", "error_description": "no"}

    page = await connect_app.http.post(MICROSOFT_CALLBACK, data=answer)
    retry = await connect_app.http.post(MICROSOFT_CALLBACK, data=fields)

    assert page.status_code == 400
    assert "Access to the mailbox was not granted." in page.text
    assert retry.status_code == 400  # the state died with the error answer
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_a_stale_code_is_refused_by_the_token_endpoint(
    connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    made = await make_owner()
    _, fields = await signed_in_microsoft(connect_app, microsoft, made.token)

    page = await connect_app.http.post(MICROSOFT_CALLBACK, data={**fields, "code": "not-a-code"})

    assert page.status_code == 400
    assert "Microsoft refused the sign-in." in page.text
    assert not await Account.filter(owner_id=made.owner.id).exists()
