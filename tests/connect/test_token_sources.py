"""OAuthTokenSource: cached tokens, one refresh at a time, revoked grants, real token endpoints."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import pytest

from app import clock
from app.events import AccountChanged, InProcessBus
from app.models import Account, ChangeLogEntry
from app.services.connect_gmail import refresh_google_token
from app.services.connect_microsoft import refresh_microsoft_token
from app.services.credentials import read_credential
from app.services.token_sources import (
    INVALID_GRANT,
    MISSING_REFRESH_TOKEN,
    OAuthTokenSource,
    Refresher,
    TokenGrant,
    store_grant,
)
from app.settings import Settings
from app.types import AccountId, AccountStatus, ChangeKind, CredentialKind, Provider
from emulators.graph_testing import ServedEmulator
from sync.providers.errors import AuthRevoked, TransientError
from tests.connect.conftest import GOOGLE_CLIENT_ID, ConnectApp, ServedGoogle
from tests.connect.flows import connect_microsoft_account, stored_access_token
from tests.factories import make_account, make_owner
from vault import KeyRing, Secret

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"


class CountingRefresher:
    """The real refresher, counting the calls that reach the token endpoint."""

    def __init__(self, refresh: Refresher) -> None:
        self._refresh = refresh
        self.calls = 0

    async def __call__(self, refresh_token: Secret) -> TokenGrant:
        self.calls += 1
        await asyncio.sleep(0.05)  # a slow endpoint: racing callers must wait, not refresh too
        return await self._refresh(refresh_token)


async def gmail_account(google: ServedGoogle) -> tuple[AccountId, str, str]:
    """An account whose tokens came from the emulator's consent: (id, address, access token)."""
    made = await make_owner()
    email = google.new_user()
    account = await make_account(made.owner, provider=Provider.GMAIL, address=email)
    tokens = google.emulator.identity.issue_tokens(email, GOOGLE_CLIENT_ID, [GMAIL_MODIFY])
    grant = TokenGrant.from_response(tokens.access_token, tokens.expires_in, tokens.refresh_token)
    await store_grant(AccountId(account.id), grant)
    return AccountId(account.id), email, tokens.access_token


@pytest.fixture
def google_refresh(settings_for_connect: Settings) -> CountingRefresher:
    return CountingRefresher(partial(refresh_google_token, settings_for_connect))


async def test_a_fresh_token_is_served_from_the_vault_without_a_refresh(
    google: ServedGoogle, ring: KeyRing, events: InProcessBus, google_refresh: CountingRefresher
) -> None:
    account_id, _, access_token = await gmail_account(google)
    source = OAuthTokenSource(account_id, google_refresh, events)

    assert await source(False) == access_token
    assert await source(False) == access_token
    assert google_refresh.calls == 0


async def test_an_expired_token_is_refreshed_once_for_all_callers_and_stored(
    google: ServedGoogle, ring: KeyRing, events: InProcessBus, google_refresh: CountingRefresher
) -> None:
    account_id, email, old = await gmail_account(google)
    first = OAuthTokenSource(account_id, google_refresh, events)
    second = OAuthTokenSource(account_id, google_refresh, events)  # another adapter, same account
    assert await first(False) == old
    clock.travel(timedelta(hours=1))

    tokens = await asyncio.gather(*(first(False) for _ in range(4)), second(False))

    assert google_refresh.calls == 1
    assert len(set(tokens)) == 1
    new = tokens[0]
    assert new != old
    assert new.startswith("ya29.")
    assert await stored_access_token(account_id) == new
    info = google.emulator.identity.authenticate(new)
    assert info is not None
    assert info.email == email
    assert await first(False) == new
    assert google_refresh.calls == 1


async def test_a_forced_refresh_takes_a_newer_stored_token_before_refreshing_again(
    google: ServedGoogle, ring: KeyRing, events: InProcessBus, google_refresh: CountingRefresher
) -> None:
    account_id, _, old = await gmail_account(google)
    mine = OAuthTokenSource(account_id, google_refresh, events)
    theirs = OAuthTokenSource(account_id, google_refresh, events)
    assert await mine(False) == old

    refreshed_by_them = await theirs(True)
    assert google_refresh.calls == 1
    # My 401 came with the old token: the newer stored one is the answer, without a refresh.
    assert await mine(True) == refreshed_by_them
    assert google_refresh.calls == 1

    again = await mine(True)
    assert google_refresh.calls == 2
    assert again not in (old, refreshed_by_them)


async def test_a_revoked_grant_marks_the_account_and_raises_auth_revoked(
    google: ServedGoogle, ring: KeyRing, events: InProcessBus, google_refresh: CountingRefresher
) -> None:
    account_id, email, _ = await gmail_account(google)
    google.emulator.identity.revoke(email)
    source = OAuthTokenSource(account_id, google_refresh, events)

    async with events.subscribe() as queue:
        with pytest.raises(AuthRevoked) as revoked:
            await source(True)
        with pytest.raises(AuthRevoked):
            await source(True)

    assert revoked.value.code == INVALID_GRANT
    account = await Account.get(id=account_id)
    assert (account.status, account.status_reason) == (AccountStatus.NEEDS_REAUTH, INVALID_GRANT)
    [change] = await ChangeLogEntry.filter(account_id=account_id)
    assert change.kind == ChangeKind.ACCOUNT_STATUS
    assert change.detail == {"status": "needs_reauth", "reason": INVALID_GRANT}
    assert queue.get_nowait() == AccountChanged(account.owner_id, account_id, change.id)
    assert queue.empty()  # the second refusal changed nothing


async def test_an_account_without_a_refresh_token_needs_reauthorisation(
    ring: KeyRing, events: InProcessBus, google_refresh: CountingRefresher
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    source = OAuthTokenSource(AccountId(account.id), google_refresh, events)

    with pytest.raises(AuthRevoked) as revoked:
        await source(False)

    assert revoked.value.code == MISSING_REFRESH_TOKEN
    assert google_refresh.calls == 0
    assert (await Account.get(id=account.id)).status == AccountStatus.NEEDS_REAUTH


async def test_an_unreachable_token_endpoint_is_transient(
    settings_for_connect: Settings, google: ServedGoogle, ring: KeyRing, events: InProcessBus
) -> None:
    account_id, _, _ = await gmail_account(google)
    nowhere = settings_for_connect.model_copy(
        update={"google_token_uri": "https://127.0.0.1:9/token"}
    )
    source = OAuthTokenSource(account_id, partial(refresh_google_token, nowhere), events)

    with pytest.raises(TransientError):
        await source(True)

    assert (await Account.get(id=account_id)).status == AccountStatus.ACTIVE


async def test_microsoft_refresh_rotates_the_refresh_token_and_revocation_is_noticed(
    connect_app: ConnectApp,
    microsoft: ServedEmulator,
    settings_for_connect: Settings,
    events: InProcessBus,
) -> None:
    made = await make_owner()
    account = await connect_microsoft_account(connect_app, microsoft, made.token)
    account_id = AccountId(account.id)
    refresh = CountingRefresher(partial(refresh_microsoft_token, settings_for_connect))
    source = OAuthTokenSource(account_id, refresh, events)
    old_access = await source(False)
    old_refresh = await read_credential(account_id, CredentialKind.OAUTH_REFRESH_TOKEN)

    new_access = await source(True)

    assert refresh.calls == 1
    assert new_access != old_access
    assert (
        microsoft.emulator.identity.verify_access_token(new_access).oid
        == account.provider_settings["object_id"]
    )
    new_refresh = await read_credential(account_id, CredentialKind.OAUTH_REFRESH_TOKEN)
    assert new_refresh is not None
    assert new_refresh != old_refresh

    microsoft.emulator.revoke_grants(account.address)
    with pytest.raises(AuthRevoked) as revoked:
        await source(True)

    assert revoked.value.code == INVALID_GRANT
    marked = await Account.get(id=account_id)
    assert (marked.status, marked.status_reason) == (AccountStatus.NEEDS_REAUTH, INVALID_GRANT)
