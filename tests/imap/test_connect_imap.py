"""``connectImap`` through the API against a real Dovecot.

Good credentials save the account with the password sealed (nowhere in a raw database dump,
only vault ciphertext in its Credential row) and a sync built from what was saved gets in; every
failure names its stage and saves nothing; plaintext is refused except, when the operator
allows it, to a loopback host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.events import InProcessBus
from app.models import Account, ChangeLogEntry, Credential, SyncState
from app.server import create_app
from app.services.credentials import read_credential
from app.services.vault_keys import configure_vault
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind, Provider
from emulators.runner import free_port
from resolvers.context import Services
from resolvers.ids import encode_id
from sync.engine import OutcomeKind, sync_account
from sync.providers.imap import ImapAdapter, ImapEndpoint
from tests.conftest import GraphQLCall
from tests.factories import make_owner, make_token
from tests.imap.conftest import Mailbox
from tests.support.dovecot import Dovecot
from tests.test_canary import _forms, _raw_database
from vault import KeyRing, generate_key

CONNECT = """
mutation Connect($input: ConnectImapInput!) {
  connectImap(input: $input) {
    __typename
    ... on ImapConnected { account { id provider address status credentialsSet } }
    ... on ConnectImapError { code message field }
  }
}
"""


@pytest.fixture
def ring(db: Settings) -> Iterator[KeyRing]:
    ring = KeyRing([generate_key()])
    configure_vault(ring)
    yield ring
    configure_vault(None)


def imap_settings(db: Settings, dovecot: Dovecot, **overrides: Any) -> Settings:
    return Settings(
        database_url=db.effective_database_url,
        data_dir=db.data_dir,
        embedded_worker=False,
        imap_ca_file=dovecot.tls.ca_path,
        imap_connect_timeout_seconds=5,
        **overrides,
    )


async def serve(settings: Settings) -> AsyncIterator[GraphQLCall]:
    app = create_app(settings)
    services: Services = app.app.state.services  # type: ignore[attr-defined]
    # The app's PostgreSQL bus needs the lifespan this test app does not run.
    services.events = InProcessBus()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

        async def gql(token: str | None, query: str, **variables: Any) -> dict[str, Any]:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            body: dict[str, Any] = response.json()
            body["_raw"] = response.text
            return body

        yield gql


@pytest.fixture
async def api(db: Settings, dovecot: Dovecot, ring: KeyRing) -> AsyncIterator[GraphQLCall]:
    async for gql in serve(imap_settings(db, dovecot)):
        yield gql


@pytest.fixture
async def loopback_api(db: Settings, dovecot: Dovecot, ring: KeyRing) -> AsyncIterator[GraphQLCall]:
    async for gql in serve(imap_settings(db, dovecot, imap_allow_plaintext_loopback=True)):
        yield gql


def server_input(mailbox: Mailbox, **overrides: Any) -> dict[str, Any]:
    server = mailbox.server
    imap = {
        "host": server.host,
        "port": server.imaps_port,
        "security": "TLS",
        "username": mailbox.user,
    }
    imap.update(overrides.pop("imap", {}))
    return {"imap": imap, "password": mailbox.password, **overrides}


async def test_good_credentials_save_the_account_with_the_password_sealed(
    db: Settings, api: GraphQLCall, mailbox: Mailbox
) -> None:
    password = mailbox.password  # random: it cannot be in the database by chance
    made = await make_owner()
    token = await make_token(made.owner)

    body = await api(token, CONNECT, input=server_input(mailbox))

    result = body["data"]["connectImap"]
    assert result["__typename"] == "ImapConnected", body
    assert result["account"]["provider"] == "IMAP"
    assert result["account"]["address"] == mailbox.user
    assert result["account"]["status"] == "ACTIVE"
    assert result["account"]["credentialsSet"] is True
    assert password not in body["_raw"]
    account = await Account.get(owner_id=made.owner.id, provider=Provider.IMAP)
    assert encode_id("Account", account.id) == result["account"]["id"]
    assert ImapEndpoint.from_settings(account.provider_settings) == mailbox.endpoint()
    credential = await Credential.get(account_id=account.id, kind=CredentialKind.IMAP_PASSWORD)
    assert password.encode() not in bytes(credential.ciphertext)
    stored = await read_credential(AccountId(account.id), CredentialKind.IMAP_PASSWORD)
    assert stored is not None
    assert stored.reveal() == password
    dump = await _raw_database(db)
    assert dump  # the dump is real: it holds the account's address
    assert mailbox.user.encode() in dump
    assert not [form for form in _forms(password) if form in dump]
    state = await SyncState.get(account_id=account.id)
    assert state.next_run_at is not None
    assert await ChangeLogEntry.filter(account_id=account.id).exists()

    async def production_like_factory(row: Account) -> ImapAdapter:
        """What the worker's factory does: settings from the row, the password from the vault."""

        async def password_source() -> Any:
            return await read_credential(AccountId(row.id), CredentialKind.IMAP_PASSWORD)

        return ImapAdapter(
            ImapEndpoint.from_settings(row.provider_settings),
            password_source,
            ssl_context=mailbox.server.ssl_context(),
        )

    with mailbox.server.client(mailbox.user) as other:
        other.append("INBOX", b"Subject: hello\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n")
    outcome = await sync_account(account.id, production_like_factory, InProcessBus())
    assert (outcome.kind, outcome.added) == (OutcomeKind.SYNCED, 1)


async def test_a_wrong_password_is_a_login_error_and_saves_nothing(
    api: GraphQLCall, mailbox: Mailbox
) -> None:
    made = await make_owner()
    token = await make_token(made.owner)

    body = await api(token, CONNECT, input=server_input(mailbox, password="guess-123"))

    result = body["data"]["connectImap"]
    assert (result["__typename"], result["code"]) == ("ConnectImapError", "LOGIN")
    assert "guess-123" not in body["_raw"]
    assert not await Account.filter(owner_id=made.owner.id).exists()
    assert not await Credential.filter(account__owner_id=made.owner.id).exists()


@pytest.mark.parametrize(
    ("imap", "code"),
    [
        ({"port": "closed"}, "CONNECT"),
        ({"host": "imap.nonexistent.invalid"}, "DNS"),
        ({"port": "plaintext", "security": "TLS"}, "TLS"),
        ({"host": "imap.example.com", "security": "PLAIN"}, "PLAINTEXT_REFUSED"),
        ({"port": "plaintext", "security": "PLAIN"}, "PLAINTEXT_REFUSED"),
        ({"port": 0}, "BAD_USER_INPUT"),
    ],
)
async def test_failures_name_their_stage_and_save_nothing(
    api: GraphQLCall, mailbox: Mailbox, imap: dict[str, Any], code: str
) -> None:
    server = mailbox.server
    ports = {"closed": free_port(), "plaintext": server.imap_port}
    imap = {k: ports.get(v, v) if k == "port" else v for k, v in imap.items()}
    made = await make_owner()
    token = await make_token(made.owner)

    body = await api(token, CONNECT, input=server_input(mailbox, imap=imap))

    result = body["data"]["connectImap"]
    assert (result["__typename"], result["code"]) == ("ConnectImapError", code), result
    assert mailbox.password not in body["_raw"]
    assert not await Account.filter(owner_id=made.owner.id).exists()


async def test_plaintext_to_loopback_when_the_operator_allows_it_and_starttls(
    loopback_api: GraphQLCall, mailbox: Mailbox
) -> None:
    made = await make_owner()
    token = await make_token(made.owner)
    port = mailbox.server.imap_port
    for security in ("PLAIN", "STARTTLS"):
        body = await loopback_api(
            token,
            CONNECT,
            input=server_input(mailbox, imap={"port": port, "security": security}),
        )
        assert body["data"]["connectImap"]["__typename"] == "ImapConnected", body
    account = await Account.get(owner_id=made.owner.id)
    assert account.provider_settings["imap"]["security"] == "starttls"

    remote = server_input(mailbox, imap={"host": "imap.example.com", "security": "PLAIN"})
    body = await loopback_api(token, CONNECT, input=remote)
    assert body["data"]["connectImap"]["code"] == "PLAINTEXT_REFUSED"


async def test_reconnecting_with_a_new_password_reactivates_the_same_account(
    api: GraphQLCall, mailbox: Mailbox
) -> None:
    made = await make_owner()
    token = await make_token(made.owner)
    first = await api(token, CONNECT, input=server_input(mailbox))
    account_id = first["data"]["connectImap"]["account"]["id"]
    row = await Account.get(owner_id=made.owner.id)
    await Account.filter(id=row.id).update(status=AccountStatus.NEEDS_REAUTH, status_reason="LOGIN")
    new_password = "a-new-password-7"
    mailbox.server.add_user(mailbox.user, new_password)

    again = await api(token, CONNECT, input=server_input(mailbox, password=new_password))

    assert again["data"]["connectImap"]["account"]["id"] == account_id
    assert again["data"]["connectImap"]["account"]["status"] == "ACTIVE"
    stored = await read_credential(AccountId(row.id), CredentialKind.IMAP_PASSWORD)
    assert stored is not None
    assert stored.reveal() == new_password


async def test_a_token_limited_to_some_accounts_cannot_connect_one(
    api: GraphQLCall, mailbox: Mailbox
) -> None:
    made = await make_owner()
    token = await make_token(made.owner, account_ids=[])

    body = await api(token, CONNECT, input=server_input(mailbox))

    assert body["data"]["connectImap"]["code"] == "FORBIDDEN"
    assert not await Account.filter(owner_id=made.owner.id).exists()
