"""sync.sessions.AdapterFactory: production adapters on the sealed tokens of connected accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.events import InProcessBus
from app.models import Account
from app.services.credentials import store_credential
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind, FolderRole, Provider
from emulators.graph_testing import ServedEmulator
from sync.providers.errors import AuthRevoked
from sync.providers.gmail import GmailAdapter
from sync.providers.graph import GraphAdapter
from sync.providers.imap import ImapAdapter
from sync.sessions import AdapterFactory, _imap_password
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


@pytest.mark.usefixtures("ring")
async def test_an_imap_account_gets_the_imap_adapter_on_its_sealed_password(
    factory: AdapterFactory,
) -> None:
    made = await make_owner()
    account = await make_account(
        made.owner,
        provider=Provider.IMAP,
        provider_settings={
            "imap": {"host": "127.0.0.1", "port": 1, "security": "tls", "username": "u"}
        },
    )
    adapter = await factory.open_adapter(account)
    try:
        assert isinstance(adapter, ImapAdapter)
        with pytest.raises(AuthRevoked) as refused:
            await _imap_password(AccountId(account.id))
        assert refused.value.code == "NO_CREDENTIAL"
        await store_credential(AccountId(account.id), CredentialKind.IMAP_PASSWORD, "pw")
        assert (await _imap_password(AccountId(account.id))).reveal() == "pw"
    finally:
        await adapter.aclose()
