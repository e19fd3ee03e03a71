"""Sending for IMAP accounts: one message over SMTP (RFC 5321) with the account's credentials.

``SmtpSender.send(raw)`` takes complete MIME (built by ``app.services.compose``), reads the
envelope from its headers (MAIL FROM the From address, RCPT TO every To, Cc and Bcc address),
removes the Bcc header from what it transmits (the recipients must not see it; the caller keeps
it in the Sent copy), and sends it on a connection of its own::

    connect   implicit TLS (``tls``, port 465) or STARTTLS (``starttls``, 587; refused when the
              server does not offer it); ``plain`` only with ``plaintext_allowed`` (the
              factory allows it where connecting an account does: loopback, when configured)
    AUTH      the username and password (asked for at each send, never kept, logged or put
              into an error)
    MAIL, RCPT, DATA

What a failure means matters to the caller (``app.services.send`` keeps an idempotency key
"unknown" only for a ``TransientError``): every failure before the DATA transfer is a
``NotSent`` (or ``AuthRevoked``) because the server cannot have sent anything, and the key may be
used again; a connection lost or timed out during DATA is ``TransientError`` ``SMTP_UNCONFIRMED``,
because the server may have taken the message. Codes::

    SMTP_CONNECT              DNS, TCP connect, or the server's greeting failed      NotSent
    SMTP_TLS                  TLS handshake or certificate, or no STARTTLS offered   NotSent
    SMTP_LOGIN                credentials refused (5xx to AUTH)                      AuthRevoked
    SMTP_LOGIN_UNAVAILABLE    the server cannot check them now (4xx to AUTH)         NotSent
    SMTP_CAPABILITY           the server offers no AUTH                              NotSent
    SMTP_SENDER_REFUSED       MAIL FROM refused                                      NotSent
    SMTP_RECIPIENTS_REFUSED   every RCPT TO refused                                  NotSent
    SMTP_REFUSED              DATA answered with an error                            NotSent
    SMTP_CONNECTION_LOST      the connection broke before DATA                       NotSent
    SMTP_ENVELOPE             the MIME names no sender or no recipient               NotSent
    PLAINTEXT_REFUSED         ``plain`` where it is not allowed                      NotSent
    SMTP_UNCONFIRMED          the connection broke during DATA                  TransientError

No retry storm: a refused login is remembered in this process (by a keyed digest of endpoint,
username and password, never the password) for ``LOGIN_REFUSAL_SECONDS``; a send with the same
credentials in that time raises ``AuthRevoked`` without connecting, while a new password (the
owner connects the account again) is tried at once. Nothing here retries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.headerregistry import AddressHeader
from email.parser import BytesParser
from typing import Any

import aiosmtplib

from sync.providers.errors import AuthRevoked, PermanentError, ProviderError, TransientError
from sync.providers.imap_connection import DEFAULT_TIMEOUT, Security
from sync.providers.imap_pool import PasswordSource
from vault import Secret

LOGIN_REFUSAL_SECONDS = 15 * 60.0
_HEADER_END = re.compile(rb"\r?\n(\r?\n)")
_BCC_LINE = re.compile(rb"bcc[ \t]*:", re.IGNORECASE)
_PARSER = BytesParser(policy=policy.SMTP)


class NotSent(ProviderError):
    """The server did not take the message; ``code`` names the stage that failed."""


@dataclass(frozen=True, slots=True)
class SmtpEndpoint:
    """Where the account sends from and who logs in; never the password."""

    host: str
    port: int
    security: Security
    username: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SmtpEndpoint | None:
        """``Account.provider_settings["smtp"]`` as ``app.services.connect_imap`` writes it;
        None when the account has no SMTP server."""
        smtp = settings.get("smtp")
        if smtp is None:
            return None
        try:
            return cls(
                host=str(smtp["host"]),
                port=int(smtp["port"]),
                security=Security(smtp["security"]),
                username=str(smtp["username"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PermanentError("unreadable SMTP settings", code="SETTINGS") from error


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who the message is from and to, and the bytes to transmit (without Bcc)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


class SmtpSender:
    """Sends messages through one SMTP server with one account's credentials."""

    def __init__(
        self,
        endpoint: SmtpEndpoint,
        password: Secret | PasswordSource,
        *,
        ssl_context: ssl.SSLContext | None = None,
        io_timeout: float = DEFAULT_TIMEOUT,
        plaintext_allowed: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._plaintext_allowed = plaintext_allowed
        self._password = password
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._io_timeout = io_timeout

    async def send(self, raw: bytes) -> None:
        """Send ``raw`` once; a typed error by stage (module docstring) when it was not."""
        if self.endpoint.security is Security.PLAIN and not self._plaintext_allowed:
            raise NotSent("plaintext SMTP would expose the password", code="PLAINTEXT_REFUSED")
        envelope = envelope_of(raw)
        password = self._password if isinstance(self._password, Secret) else await self._password()
        refusal = _refusal_key(self.endpoint, password)
        if _refused_recently(refusal):
            raise AuthRevoked("the SMTP server refused this password lately", code="SMTP_LOGIN")
        endpoint = self.endpoint
        client = aiosmtplib.SMTP(
            hostname=endpoint.host,
            port=endpoint.port,
            use_tls=endpoint.security is Security.TLS,
            start_tls=endpoint.security is Security.STARTTLS,
            tls_context=self._ssl_context,
            timeout=self._io_timeout,
        )
        try:
            await _connect(client)
            await _login(client, endpoint.username, password, refusal)
            await _transfer(client, envelope)
        finally:
            await _close(client)


def envelope_of(raw: bytes) -> Envelope:
    """The envelope of complete MIME: From, and To + Cc + Bcc in order, each address once."""
    headers = _PARSER.parsebytes(raw, headersonly=True)
    senders = _addresses(headers.get_all("from") or [])
    recipients: list[str] = []
    for name in ("to", "cc", "bcc"):
        recipients.extend(_addresses(headers.get_all(name) or []))
    if not senders or not recipients:
        raise NotSent("the message names no sender or no recipient", code="SMTP_ENVELOPE")
    return Envelope(senders[0], tuple(dict.fromkeys(recipients)), without_bcc(raw))


def without_bcc(raw: bytes) -> bytes:
    """``raw`` without its Bcc header field (and the field's folded continuation lines)."""
    end = _HEADER_END.search(raw)
    split = end.start(1) if end else len(raw)  # the header block keeps its last line break
    kept: list[bytes] = []
    dropping = False
    for line in raw[:split].splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            dropping = _BCC_LINE.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[split:]


def _addresses(values: list[Any]) -> list[str]:
    found: list[str] = []
    for value in values:
        if isinstance(value, AddressHeader):
            found.extend(address.addr_spec for address in value.addresses if address.addr_spec)
    return found


async def _connect(client: aiosmtplib.SMTP) -> None:
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as error:
        tls_failure = _tls_failure(error)
        if tls_failure is not None:
            raise NotSent(f"TLS failed ({type(tls_failure).__name__})", code="SMTP_TLS") from None
        if isinstance(error, aiosmtplib.SMTPException) and "STARTTLS" in str(error).upper():
            raise NotSent("the SMTP server does not offer STARTTLS", code="SMTP_TLS") from None
        raise NotSent(_connect_reason(error), code="SMTP_CONNECT") from None


def _tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``error`` (aiosmtplib wraps an implicit-TLS handshake failure)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _login(client: aiosmtplib.SMTP, username: str, password: Secret, refusal: bytes) -> None:
    try:
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
    except aiosmtplib.SMTPException as error:
        raise NotSent(_connect_reason(error), code="SMTP_CONNECTION_LOST") from None
    methods = client.supported_auth_methods
    if not methods:
        raise NotSent("the SMTP server offers no AUTH this client speaks", code="SMTP_CAPABILITY")
    # One attempt with the first mechanism both speak (``login()`` would try each in turn:
    # several refusals per send bring lockouts closer).
    authenticate = getattr(client, f"auth_{methods[0].replace('-', '')}")
    try:
        await authenticate(username, password.reveal())
    except aiosmtplib.SMTPAuthenticationError as error:
        if 400 <= error.code < 500:
            raise NotSent(
                "the SMTP server cannot check credentials now", code="SMTP_LOGIN_UNAVAILABLE"
            ) from None
        _refusals[refusal] = time.monotonic()
        raise AuthRevoked("the SMTP server refused the login", code="SMTP_LOGIN") from None
    except aiosmtplib.SMTPException as error:
        raise NotSent(_connect_reason(error), code="SMTP_CONNECTION_LOST") from None


async def _transfer(client: aiosmtplib.SMTP, envelope: Envelope) -> None:
    options = ["BODY=8BITMIME"] if _eight_bit(envelope.data, client) else []
    try:
        await client.mail(envelope.sender, options=options)
    except aiosmtplib.SMTPResponseException as error:
        raise NotSent(
            f"the SMTP server refused the sender ({error.code})", code="SMTP_SENDER_REFUSED"
        ) from None
    except aiosmtplib.SMTPException as error:
        raise NotSent(_connect_reason(error), code="SMTP_CONNECTION_LOST") from None
    accepted = 0
    for recipient in envelope.recipients:
        try:
            await client.rcpt(recipient)
            accepted += 1
        except aiosmtplib.SMTPRecipientRefused:
            continue
        except aiosmtplib.SMTPException as error:
            raise NotSent(_connect_reason(error), code="SMTP_CONNECTION_LOST") from None
    if not accepted:
        raise NotSent("the SMTP server refused every recipient", code="SMTP_RECIPIENTS_REFUSED")
    try:
        await client.data(envelope.data)
    except aiosmtplib.SMTPResponseException as error:
        raise NotSent(
            f"the SMTP server refused the message ({error.code})", code="SMTP_REFUSED"
        ) from None
    except (aiosmtplib.SMTPException, OSError):
        raise TransientError(
            "the connection broke while the message was being sent; it may have been sent",
            code="SMTP_UNCONFIRMED",
        ) from None


def _eight_bit(data: bytes, client: aiosmtplib.SMTP) -> bool:
    return not data.isascii() and client.supports_extension("8bitmime")


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def _connect_reason(error: BaseException) -> str:
    return f"cannot reach the SMTP server ({type(error).__name__})"


# -- refused logins ------------------------------------------------------------------------------

_digest_key = secrets.token_bytes(32)  # per process: the digests below mean nothing elsewhere
_refusals: dict[bytes, float] = {}


def _refusal_key(endpoint: SmtpEndpoint, password: Secret) -> bytes:
    who = f"{endpoint.host}\0{endpoint.port}\0{endpoint.username}\0".encode()
    return hmac.new(_digest_key, who + password.reveal_bytes(), hashlib.sha256).digest()


def _refused_recently(key: bytes) -> bool:
    now = time.monotonic()
    for stale in [k for k, at in _refusals.items() if now - at >= LOGIN_REFUSAL_SECONDS]:
        del _refusals[stale]
    return key in _refusals
