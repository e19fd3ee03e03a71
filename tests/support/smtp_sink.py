"""A local SMTP server for tests: implicit TLS or STARTTLS, AUTH required, every message kept.

``SmtpSink.start(tls, security=...)`` serves aiosmtpd in the running event loop on a free
loopback port with the server certificate of ``tls`` (the Dovecot harness's throwaway CA, so the
clients that trust Dovecot trust the sink too). It stands where a mail provider's submission
server stands: ``users`` maps usernames to passwords, ``received`` keeps each accepted message
(envelope and the bytes as transmitted), ``logins`` each AUTH attempt as (username, accepted),
never the password; ``lose_answers`` drops the connection after keeping a message, as a
network failure after the server took it would. ``security`` ``"tls"`` is SMTPS (port 465
style), ``"starttls"`` refuses AUTH and MAIL before STARTTLS (port 587 style), ``"plain"`` has
no TLS at all (what a loopback bridge may offer).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from emulators.runner import free_port
from emulators.test_ca import TlsFiles

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope and the data as the client sent it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


@dataclass
class SmtpSink:
    """A running sink; ``await stop()`` closes it."""

    port: int
    security: str
    users: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)
    lose_answers: int = 0
    """How many next messages are kept but not answered: the connection drops after DATA."""
    _server: asyncio.AbstractServer | None = None

    @classmethod
    async def start(cls, tls: TlsFiles, *, security: str = "tls") -> SmtpSink:
        if security not in ("tls", "starttls", "plain"):
            raise ValueError("security is 'tls', 'starttls' or 'plain'")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
        sink = cls(free_port(HOST), security)
        starttls = security == "starttls"
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            return SMTP(
                _Handler(sink),
                hostname="sink.example.test",
                tls_context=context if starttls else None,
                require_starttls=starttls,
                # aiosmtpd only knows TLS it negotiated itself (STARTTLS); SMTPS is TLS too.
                # AUTH is required by the handler (MAIL before AUTH is refused) rather than
                # by ``auth_required``, which aiosmtpd would only take together with STARTTLS.
                auth_require_tls=starttls,
                authenticator=sink._authenticate,
                loop=loop,
            )

        sink._server = await loop.create_server(
            protocol, HOST, sink.port, ssl=context if security == "tls" else None
        )
        return sink

    def settings(self, username: str) -> dict[str, Any]:
        """``connectImap``'s ``smtp`` input for this sink."""
        return {
            "host": HOST,
            "port": self.port,
            "security": self.security.upper(),
            "username": username,
        }

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = data.login.decode("utf-8", "replace")
        accepted = username in self.users and self.users[username].encode() == data.password
        self.logins.append((username, accepted))
        return AuthResult(success=accepted, handled=False)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(  # noqa: N802 (the hook name aiosmtpd calls)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (the hook name aiosmtpd calls)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        self._sink.received.append(
            Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(content))
        )
        if self._sink.lose_answers > 0:
            self._sink.lose_answers -= 1
            assert server.transport is not None
            server.transport.abort()  # taken, but the client never hears so
        return "250 2.0.0 accepted"
