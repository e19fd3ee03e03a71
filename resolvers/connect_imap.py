"""``connectImap``: connect any mailbox that has a password (scope ``accounts:manage``).

The server is tried with the password before anything is saved (``app.services.connect_imap``);
a failure comes back as ``ConnectImapError`` whose code names the stage that failed (DNS,
CONNECT, TLS, LOGIN, CAPABILITY, TIMEOUT, LOGIN_UNAVAILABLE) or the input that was refused
(BAD_USER_INPUT, PLAINTEXT_REFUSED, FORBIDDEN). The password goes into the vault and is never
part of any result or error.

Wiring only: the check the service runs is ``sync.providers.imap_connection.check_login``, the
same connect-and-login code the sync uses, so "connected" means the sync will get in too.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry

from app.services.connect_imap import (
    ImapConnectCode,
    ImapConnectFailed,
    ImapConnectRequest,
    MailServer,
    Security,
    ServerCheck,
    connect_imap,
    imap_ssl_context,
)
from app.services.errors import ServiceError
from app.settings import Settings
from app.types import Action
from resolvers.accounts import Account
from resolvers.context import Context
from resolvers.permissions import requires
from sync.providers.errors import ProviderError
from sync.providers.imap_connection import ImapEndpoint, check_login
from sync.providers.imap_connection import Security as WireSecurity
from vault import Secret

strawberry.enum(
    Security,
    name="MailServerSecurity",
    description="TLS: implicit TLS (IMAPS, usually port 993). STARTTLS: upgraded before login "
    "(usually 143). PLAIN: no encryption, refused unless the operator allows it for loopback.",
)


@strawberry.enum(description="Why connectImap did not connect the mailbox.")
class ConnectImapErrorCode(Enum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    FORBIDDEN = "FORBIDDEN"
    PLAINTEXT_REFUSED = "PLAINTEXT_REFUSED"
    DNS = "DNS"
    CONNECT = "CONNECT"
    TLS = "TLS"
    LOGIN = "LOGIN"
    CAPABILITY = "CAPABILITY"
    TIMEOUT = "TIMEOUT"
    LOGIN_UNAVAILABLE = "LOGIN_UNAVAILABLE"


@strawberry.type(description="connectImap failed; nothing was saved.")
class ConnectImapError:
    code: ConnectImapErrorCode
    message: str
    field: str | None = None


@strawberry.type(description="The mailbox is connected; its first sync is due now.")
class ImapConnected:
    account: Account


@strawberry.input(description="A mail server and the user who logs in to it.")
class MailServerInput:
    host: str
    port: int
    security: Security
    username: str


@strawberry.input(description="An IMAP mailbox to connect, with its password.")
class ConnectImapInput:
    imap: MailServerInput
    password: str = strawberry.field(
        description="The password or app password; stored sealed, never returned."
    )
    address: str | None = strawberry.field(
        default=None, description="The mailbox address; default: the username (or user@host)."
    )
    display_name: str | None = None
    smtp: MailServerInput | None = strawberry.field(
        default=None, description="Where to send mail from this mailbox (stored for sending)."
    )
    smtp_password: str | None = strawberry.field(
        default=None, description="SMTP password, when it differs from the IMAP one; sealed."
    )


ConnectImapResult = Annotated[
    ImapConnected | ConnectImapError, strawberry.union("ConnectImapResult")
]

_STAGE_MESSAGES = {
    ImapConnectCode.DNS: "The server's host name does not resolve.",
    ImapConnectCode.CONNECT: "Nothing answered at that host and port.",
    ImapConnectCode.TLS: "The secure connection failed (certificate, or the wrong security "
    "for this port).",
    ImapConnectCode.LOGIN: "The server refused the username or password (some providers need "
    "an app password).",
    ImapConnectCode.CAPABILITY: "The server does not offer what is needed (IMAP4rev1 and a "
    "safe way to log in).",
    ImapConnectCode.TIMEOUT: "The server stopped answering.",
    ImapConnectCode.LOGIN_UNAVAILABLE: "The server cannot check the password right now; try "
    "again later.",
}
_WIRE_CODES = {
    "CONNECTION_LOST": ImapConnectCode.CONNECT,
    "BYE": ImapConnectCode.CONNECT,
    "PROTOCOL": ImapConnectCode.CAPABILITY,
}


def _server(server: MailServerInput) -> MailServer:
    return MailServer(server.host, server.port, server.security, server.username)


def server_check(settings: Settings) -> ServerCheck:
    """The service's ``ServerCheck``: log in with the sync's own IMAP client."""

    async def check(server: MailServer, password: Secret) -> None:
        endpoint = ImapEndpoint(
            server.host.strip(), server.port, WireSecurity(server.security.value), server.username
        )
        try:
            await check_login(
                endpoint,
                password,
                ssl_context=imap_ssl_context(settings),
                io_timeout=settings.imap_connect_timeout_seconds,
            )
        except ProviderError as error:
            known = {code.value for code in ImapConnectCode}
            code = (
                ImapConnectCode(error.code)
                if error.code in known
                else _WIRE_CODES.get(error.code, ImapConnectCode.CONNECT)
            )
            detail = f" ({error})" if code in (ImapConnectCode.TLS, ImapConnectCode.CONNECT) else ""
            raise ImapConnectFailed(code, _STAGE_MESSAGES[code] + detail) from None

    return check


@strawberry.type
class ConnectImapMutation:
    @strawberry.mutation(
        extensions=requires(Action.ACCOUNTS_MANAGE),
        description="Connect an IMAP mailbox with its password: the server is tried first "
        "(error codes name what failed), then the account is saved with the password sealed.",
    )
    async def connect_imap(
        self, info: strawberry.Info[Context, None], input: ConnectImapInput
    ) -> ConnectImapResult:
        services = info.context.services
        request = ImapConnectRequest(
            imap=_server(input.imap),
            password=Secret(input.password),
            address=input.address,
            display_name=input.display_name or "",
            smtp=None if input.smtp is None else _server(input.smtp),
            smtp_password=None if input.smtp_password is None else Secret(input.smtp_password),
        )
        try:
            account = await connect_imap(
                services.settings,
                info.context.require_principal(),
                request,
                check=server_check(services.settings),
                events=services.events,
            )
        except ServiceError as error:
            return ConnectImapError(
                code=ConnectImapErrorCode(error.code),
                message=str(error),
                field=getattr(error, "field", None),
            )
        return ImapConnected(account=Account.from_row(account))
