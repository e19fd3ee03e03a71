"""One real Dovecot for the IMAP tests (session-scoped; each test gets its own mailbox user).

``dovecot`` is the running server (``tests.support.dovecot``); ``mailbox`` (and
``other_mailbox``) make a fresh user with a known password; ``adapter_for`` builds the real
``ImapAdapter`` for a user, and ``imap_account``/``ImapAccounts.factory`` give the sync engine
the same adapter for an account, as production's factory would (the password passed in rather
than read from the vault: the connect tests cover the vault). ``server_truth`` is what the
server holds, read by another client, in the cache's shape.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.models import Account
from app.types import Provider
from sync.providers.imap import ImapAdapter, ImapEndpoint, Security
from tests.factories import make_account, make_owner
from tests.support.dovecot import Dovecot, start_dovecot
from vault import Secret

_users = itertools.count(1)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Mailbox:
    """A Dovecot user: address and password."""

    server: Dovecot
    user: str
    password: str

    def endpoint(self, security: Security = Security.TLS) -> ImapEndpoint:
        port = self.server.imaps_port if security is Security.TLS else self.server.imap_port
        return ImapEndpoint(self.server.host, port, security, self.user)

    def settings(self) -> dict[str, Any]:
        """``Account.provider_settings`` as ``connectImap`` writes them."""
        endpoint = self.endpoint()
        return {
            "imap": {
                "host": endpoint.host,
                "port": endpoint.port,
                "security": endpoint.security.value,
                "username": endpoint.username,
            },
            "smtp": None,
        }


def new_mailbox(dovecot: Dovecot) -> Mailbox:
    """A fresh Dovecot user with a random password."""
    user = f"user{next(_users)}@example.test"
    password = f"pw-{secrets.token_hex(8)}"
    dovecot.add_user(user, password)
    return Mailbox(dovecot, user, password)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    return new_mailbox(dovecot)


@pytest.fixture
def other_mailbox(dovecot: Dovecot) -> Mailbox:
    """A second user, for tests of two accounts."""
    return new_mailbox(dovecot)


def adapter_for(mailbox: Mailbox, **options: Any) -> ImapAdapter:
    """The real adapter for ``mailbox`` over IMAPS, trusting the test server's CA."""
    return ImapAdapter(
        mailbox.endpoint(options.pop("security", Security.TLS)),
        Secret(options.pop("password", mailbox.password)),
        ssl_context=mailbox.server.ssl_context(),
        **options,
    )


class ImapAccounts:
    """The engine's ``AdapterFactory`` for accounts whose address is a Dovecot user."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.options: dict[str, Any] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.built: list[ImapAdapter] = []

    async def account(self, mailbox: Mailbox, **options: Any) -> Account:
        self.mailboxes[mailbox.user] = mailbox
        self.options[mailbox.user] = options
        owner = await make_owner()
        return await make_account(
            owner.owner,
            provider=Provider.IMAP,
            address=mailbox.user,
            provider_settings=mailbox.settings(),
        )

    async def factory(self, account: Account) -> ImapAdapter:
        mailbox = self.mailboxes[account.address]
        endpoint = ImapEndpoint.from_settings(account.provider_settings)
        assert endpoint == mailbox.endpoint()
        adapter = adapter_for(mailbox, **self.options[account.address])
        self.built.append(adapter)
        return adapter


@pytest.fixture
def accounts(dovecot: Dovecot) -> ImapAccounts:
    return ImapAccounts(dovecot)


def server_truth(mailbox: Mailbox, folders: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every message of ``folders`` as another client sees it, keyed like the cache:
    provider id -> folder, flags and Message-ID."""
    truth: dict[str, dict[str, Any]] = {}
    with mailbox.server.client(mailbox.user) as other:
        for folder in folders:
            validity = other.uidvalidity(folder)
            for uid, (flags, raw) in other.fetch_all(folder, "HEADER").items():
                truth[f"{validity}:{uid}:{folder}"] = {
                    "label_ids": [folder],
                    "unread": "\\Seen" not in flags,
                    "starred": "\\Flagged" in flags,
                    "message_id_header": message_id_of(raw),
                }
    return truth


def message_id_of(raw: bytes) -> str | None:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    return None
