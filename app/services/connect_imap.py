"""Connecting an IMAP mailbox: try the server with the password first, then save the account.

``connect_imap(settings, principal, request, check=..., events=...)``:

1. checks the input: host, port 1-65535, a username and a password; ``security`` ``tls``
   (implicit TLS, usually port 993) or ``starttls`` (usually 143). ``plain`` sends the password
   unencrypted and is refused (``PLAINTEXT_REFUSED``) unless the operator set
   ``INBOX_API_IMAP_ALLOW_PLAINTEXT_LOOPBACK`` and the host is a loopback address;
2. awaits ``check(server, password)``, which connects and logs in and raises
   ``ImapConnectFailed`` with the stage that failed: ``DNS``, ``CONNECT``, ``TLS``, ``LOGIN``,
   ``CAPABILITY`` (or ``TIMEOUT``, ``LOGIN_UNAVAILABLE``). Nothing is saved when it fails;
3. creates the account (or, for an address the owner has connected before, updates its server
   settings and makes it active again), stores the password (and an SMTP password, when one is
   given) ONLY through the vault service (``store_credential``: AES-256-GCM, bound to the row),
   makes its sync due now and logs and publishes the status change, in one transaction.

The check is passed in: this module does not talk IMAP (``app.services`` does not import the
sync side); ``resolvers.connect_imap`` hands it ``sync.providers.imap_connection.check_login``.

``Account.provider_settings`` (never a secret) holds what the adapter needs, read back by
``sync.providers.imap_connection.ImapEndpoint.from_settings``::

    {"imap": {"host": str, "port": int, "security": "tls"|"starttls"|"plain", "username": str},
     "smtp": {"host": ..., "port": ..., "security": ..., "username": ...} | null}

Only a token covering every account may connect one (as for Gmail and Microsoft). The password
is held as a ``vault.Secret``; this module never logs it, returns it or puts it into an error.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from enum import StrEnum

from tortoise.transactions import in_transaction

from app.auth.principal import Principal
from app.events import EventBus
from app.models import Account
from app.services.credentials import store_credential
from app.services.errors import Forbidden, InvalidInput, ServiceError

# The OAuth connect flows' rule for a (re)connected account, shared rather than copied.
from app.services.sync_control import resume_sync
from app.services.token_sources import log_status_change
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind, Provider
from vault import Secret

MAX_HOST_LENGTH = 253
MAX_FIELD_LENGTH = 320
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Security(StrEnum):
    """How the connection to the mail server is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


class ImapConnectCode(StrEnum):
    """Why connecting failed, by the stage that failed."""

    DNS = "DNS"
    CONNECT = "CONNECT"
    TLS = "TLS"
    LOGIN = "LOGIN"
    CAPABILITY = "CAPABILITY"
    TIMEOUT = "TIMEOUT"
    LOGIN_UNAVAILABLE = "LOGIN_UNAVAILABLE"


class ImapConnectFailed(ServiceError):
    """The server could not be reached or refused the login; nothing was saved."""

    def __init__(self, code: ImapConnectCode, message: str) -> None:
        super().__init__(message, code=code.value)


class PlaintextRefused(ServiceError):
    """``plain`` was asked for where the operator does not allow it."""

    code = "PLAINTEXT_REFUSED"


@dataclass(frozen=True, slots=True)
class MailServer:
    """Where a mail server is and who logs in (never the password)."""

    host: str
    port: int
    security: Security
    username: str


@dataclass(frozen=True, slots=True)
class ImapConnectRequest:
    """What the owner gives to connect a mailbox."""

    imap: MailServer
    password: Secret
    address: str | None = None
    display_name: str = ""
    smtp: MailServer | None = None
    smtp_password: Secret | None = None


ServerCheck = Callable[[MailServer, Secret], Awaitable[None]]
"""``await check(server, password)``: connect and log in, or raise ``ImapConnectFailed``."""


async def connect_imap(
    settings: Settings,
    principal: Principal,
    request: ImapConnectRequest,
    *,
    check: ServerCheck,
    events: EventBus,
) -> Account:
    """Check the server and the password, then save the account; see the module docstring."""
    if principal.account_ids is not None:
        raise Forbidden("connecting a mailbox needs a token that covers all accounts")
    _check_server(settings, request.imap, "imap")
    if request.smtp is not None:
        _check_server(settings, request.smtp, "smtp")
    if not request.password.reveal_bytes():
        raise InvalidInput("a password is needed", field="password")
    address = _address(request)
    await check(request.imap, request.password)
    provider_settings = {
        "imap": asdict(request.imap),
        "smtp": None if request.smtp is None else asdict(request.smtp),
    }
    async with in_transaction():
        account, created = await Account.get_or_create(
            owner_id=principal.owner_id,
            provider=Provider.IMAP,
            address=address,
            defaults={
                "display_name": request.display_name,
                "provider_settings": provider_settings,
            },
        )
        if not created:
            account.status, account.status_reason = AccountStatus.ACTIVE, None
            account.display_name = request.display_name or account.display_name
            account.provider_settings = provider_settings
            await account.save(
                update_fields=["status", "status_reason", "display_name", "provider_settings"]
            )
        account_id = AccountId(account.id)
        await store_credential(account_id, CredentialKind.IMAP_PASSWORD, request.password)
        if request.smtp_password is not None:
            await store_credential(account_id, CredentialKind.SMTP_PASSWORD, request.smtp_password)
        await resume_sync(AccountId(account.id))
        event = await log_status_change(account, reason="CONNECTED")
    await events.publish(event)
    return account


def imap_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for IMAP servers: the system's CAs, plus ``imap_ca_file`` when set."""
    context = ssl.create_default_context()
    if settings.imap_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.imap_ca_file))
    return context


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine without asking DNS (a literal address or
    ``localhost``): a name that merely resolves to 127.0.0.1 today does not count."""
    name = host.strip().rstrip(".").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_server(settings: Settings, server: MailServer, field: str) -> None:
    host = server.host.strip()
    if not host or len(host) > MAX_HOST_LENGTH or any(c.isspace() or c in "/@" for c in host):
        raise InvalidInput("a host name or address is needed", field=f"{field}.host")
    if not 1 <= server.port <= 65535:
        raise InvalidInput("the port must be 1-65535", field=f"{field}.port")
    if not server.username or len(server.username) > MAX_FIELD_LENGTH:
        raise InvalidInput("a username is needed", field=f"{field}.username")
    if any(char in server.username for char in "\r\n\0"):
        raise InvalidInput("the username has control characters", field=f"{field}.username")
    if server.security is Security.PLAIN and not (
        settings.imap_allow_plaintext_loopback and is_loopback(host)
    ):
        raise PlaintextRefused(
            "an unencrypted connection would expose the password: use tls or starttls"
            + (
                ""
                if settings.imap_allow_plaintext_loopback
                else " (this server allows plain only for loopback hosts, when configured)"
            )
        )


def _address(request: ImapConnectRequest) -> str:
    address = (request.address or "").strip()
    if not address:
        username = request.imap.username.strip()
        address = username if "@" in username else f"{username}@{request.imap.host.strip()}"
    if len(address) > MAX_FIELD_LENGTH or any(c.isspace() for c in address):
        raise InvalidInput("not a usable mailbox address", field="address")
    return address.lower()
