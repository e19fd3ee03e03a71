"""sync.sessions.AdapterFactory: production adapters on the sealed tokens of connected accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.events import InProcessBus
from app.models import Account
from app.settings import Settings
from app.types import AccountId, AccountStatus, FolderRole, Provider
from emulators.graph_testing import ServedEmulator
from sync.providers.errors import AuthRevoked, PermanentError
from sync.providers.gmail import GmailAdapter
from sync.providers.graph import GraphAdapter
from sync.sessions import AdapterFactory
from tests.connect.conftest import ConnectApp, ServedGoogle
from tests.connect.flows import (
    connect_gmail_account,
    connect_microsoft_account,
    stored_access_token,
)
from tests.factories import make_account, make_owner


@pytest.fixture
async def factory(
    settings_for_connect: Settings, events: InProcessBus
) -> AsyncIterator[AdapterFactory]:
    factory = AdapterFactory(settings_for_connect, events)
    yield factory
    await factory.aclose()


async def test_gmail_adapter_recovers_from_a_token_google_expired(
    connect_app: ConnectApp, google: ServedGoogle, factory: AdapterFactory
) -> None:
    made = await make_owner()
    account = await connect_gmail_account(connect_app, google, made.token)
    adapter = await factory.open_adapter(account)
    assert isinstance(adapter, GmailAdapter)
    before = await stored_access_token(AccountId(account.id))
    google.emulator.identity.expire_access_tokens(account.address)  # our copy still looks fresh

    folders = await adapter.list_folders()

    assert FolderRole.INBOX in {folder.role for folder in folders}
    assert await stored_access_token(AccountId(account.id)) != before
    await adapter.aclose()


async def test_gmail_adapter_stops_with_auth_revoked_when_the_user_revoked_access(
    connect_app: ConnectApp, google: ServedGoogle, factory: AdapterFactory
) -> None:
    made = await make_owner()
    account = await connect_gmail_account(connect_app, google, made.token)
    adapter = await factory.open_adapter(account)
    google.emulator.identity.revoke(account.address)

    with pytest.raises(AuthRevoked):
        await adapter.list_folders()

    assert (await Account.get(id=account.id)).status == AccountStatus.NEEDS_REAUTH
    await adapter.aclose()


async def test_graph_adapter_recovers_from_a_token_microsoft_expired(
    connect_app: ConnectApp, microsoft: ServedEmulator, factory: AdapterFactory
) -> None:
    made = await make_owner()
    account = await connect_microsoft_account(connect_app, microsoft, made.token)
    adapter = await factory.open_adapter(account)
    assert isinstance(adapter, GraphAdapter)
    microsoft.emulator.expire_access_tokens(account.address)

    folders = await adapter.list_folders()

    assert FolderRole.INBOX in {folder.role for folder in folders}
    await adapter.aclose()


async def test_an_imap_account_has_no_oauth_adapter(factory: AdapterFactory) -> None:
    made = await make_owner()
    account = await make_account(made.owner, provider=Provider.IMAP)

    with pytest.raises(PermanentError) as refused:
        await factory.open_adapter(account)

    assert refused.value.code == "NO_ADAPTER"
