"""One IMAP connection over asyncio streams: connect, TLS, login, commands, streamed responses.

A small client of our own rather than aioimaplib: aioimaplib 2.0.3 handles each line of a
received chunk with a recursive call, so one large ``UID FETCH`` (a few thousand messages in one
TCP read burst) ends in ``RecursionError`` (measured against Dovecot with 10,000 messages), it
buffers a whole response before returning it, and its IDLE API hides which responses arrived.
Here a response is read as it comes (``stream``), literals are read with ``readexactly``, and
every failure becomes a typed ``ProviderError`` whose ``code`` names the stage that failed::

    DNS         the host name does not resolve                     TransientError
    CONNECT     TCP connect refused, unreachable or timed out      TransientError
    TLS         handshake or certificate check failed; STARTTLS
                refused                                            PermanentError
    LOGIN       credentials refused (RFC 5530 AUTHENTICATIONFAILED
                and any other NO to LOGIN)                         AuthRevoked
    LOGIN_UNAVAILABLE  the server cannot check them now            TransientError
    CAPABILITY  no IMAP4rev1, or no way to log in safely           PermanentError
    TIMEOUT     connected, then the server stopped answering       TransientError
    CONNECTION_LOST  reset or closed mid-command                   TransientError
    PROTOCOL    BAD, or a response this client cannot read         PermanentError

The password is sent once (LOGIN or AUTHENTICATE PLAIN) and never logged, kept or put into an
error. Security modes: ``tls`` (implicit TLS, port 993), ``starttls`` (port 143, upgraded before
anything else is sent) and ``plain``, which only the connect service may allow, for loopback.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import count
from typing import Any

from sync.providers.errors import AuthRevoked, PermanentError, ProviderError, TransientError
from sync.providers.imap_protocol import ProtocolError, Response, as_text, parse_response, quote
from vault import Secret

DEFAULT_TIMEOUT = 30.0
READ_LIMIT = 16 * 1024 * 1024  # longest line: a SEARCH result of a very large folder
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
# What a quoted string may carry: 7-bit text without NUL, CR or LF.
_QUOTABLE = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
_TRANSIENT_LOGIN_CODES = frozenset({"UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG"})


class Security(StrEnum):
    """How the connection is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class ImapEndpoint:
    """Where a mailbox is and who logs in; never the password."""

    host: str
    port: int
    security: Security
    username: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ImapEndpoint:
        """Read ``Account.provider_settings["imap"]`` as ``app.services.connect_imap`` writes it:
        ``{"host": str, "port": int, "security": "tls"|"starttls"|"plain", "username": str}``."""
        try:
            imap = settings["imap"]
            return cls(
                host=str(imap["host"]),
                port=int(imap["port"]),
                security=Security(imap["security"]),
                username=str(imap["username"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise PermanentError("unreadable IMAP settings", code="SETTINGS") from error


class ImapConnection:
    """A logged-in (or about to be) IMAP session; one command at a time."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._tags = count(1)
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: set[str] = set()
        self.selected: str | None = None
        self.broken = False

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        endpoint: ImapEndpoint,
        password: Secret,
        *,
        ssl_context: ssl.SSLContext | None = None,
        io_timeout: float = DEFAULT_TIMEOUT,
    ) -> ImapConnection:
        """Connect, secure, log in and read the capabilities; typed errors by stage."""
        context = ssl_context or ssl.create_default_context()
        reader, writer = await _connect(endpoint.host, endpoint.port, io_timeout)
        connection = cls(reader, writer, io_timeout)
        try:
            if endpoint.security is Security.TLS:
                await connection._start_tls(context, endpoint.host)
            greeting = await connection._read()
            if greeting.kind == "BYE" or greeting.tag != "*":
                raise TransientError("the server refused the connection", code="CONNECT")
            if greeting.code_name == "CAPABILITY":
                connection._set_capabilities(greeting.code[1:])
            if endpoint.security is Security.STARTTLS:
                await connection._refresh_capabilities()
                if "STARTTLS" not in connection.capabilities:
                    raise PermanentError("the server does not offer STARTTLS", code="TLS")
                await connection.run("STARTTLS")
                await connection._start_tls(context, endpoint.host)
                connection.capabilities = frozenset()
            if greeting.kind != "PREAUTH":
                await connection._login(endpoint.username, password)
            if not connection.capabilities:
                await connection._refresh_capabilities()
            if not connection.capabilities & {"IMAP4REV1", "IMAP4REV2"}:
                raise PermanentError("the server does not speak IMAP4rev1", code="CAPABILITY")
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _start_tls(self, context: ssl.SSLContext, host: str) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._writer.start_tls(context, server_hostname=host)
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise PermanentError(f"TLS failed ({_reason(error)})", code="TLS") from None
        except (TimeoutError, OSError) as error:
            raise PermanentError(
                f"TLS handshake did not complete ({type(error).__name__})", code="TLS"
            ) from None

    async def _login(self, username: str, password: Secret) -> None:
        caps = self.capabilities or await self._refresh_capabilities()
        try:
            if "LOGINDISABLED" in caps:
                if "AUTH=PLAIN" not in caps:
                    raise PermanentError("the server offers no usable login", code="CAPABILITY")
                await self._authenticate_plain(username, password)
            else:
                tagged = await self._login_command(username, password)
                if tagged.code_name == "CAPABILITY":
                    self._set_capabilities(tagged.code[1:])
                else:
                    self.capabilities = frozenset()
        except CommandRefused as refused:
            if refused.response.code_name in _TRANSIENT_LOGIN_CODES:
                raise TransientError(
                    "the server cannot check credentials now", code="LOGIN_UNAVAILABLE"
                ) from None
            raise AuthRevoked("the IMAP server refused the login", code="LOGIN") from None

    async def _login_command(self, username: str, password: Secret) -> Response:
        value = password.reveal()
        if _QUOTABLE.fullmatch(value) and _QUOTABLE.fullmatch(username):
            line = f"LOGIN {quote(username)} {quote(value)}".encode()
            return await self._simple(line)
        # A synchronising literal carries any bytes (8-bit or control characters).
        tag = self._next_tag()
        user = username.encode()
        secret = password.reveal_bytes()
        await self._send(tag + b" LOGIN {%d}\r\n" % len(user))
        await self._expect_continuation(tag)
        await self._send(user + b" {%d}\r\n" % len(secret))
        await self._expect_continuation(tag)
        await self._send(secret + b"\r\n")
        return await self._finish(tag)

    async def _authenticate_plain(self, username: str, password: Secret) -> None:
        token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.reveal_bytes())
        tag = self._next_tag()
        await self._send(tag + b" AUTHENTICATE PLAIN\r\n")
        await self._expect_continuation(tag)
        await self._send(token + b"\r\n")
        tagged = await self._finish(tag)
        if tagged.code_name == "CAPABILITY":
            self._set_capabilities(tagged.code[1:])
        else:
            self.capabilities = frozenset()

    async def _refresh_capabilities(self) -> frozenset[str]:
        for response in await self.run("CAPABILITY"):
            if response.kind == "CAPABILITY":
                self._set_capabilities(response.items)
        return self.capabilities

    def _set_capabilities(self, items: list[Any]) -> None:
        self.capabilities = frozenset(as_text(item).upper() for item in items)

    # -- commands ------------------------------------------------------------------------------

    async def run(self, command: str) -> list[Response]:
        """Send ``command`` (arguments already quoted) and return its untagged responses."""
        return [response async for response in self.stream(command)]

    async def stream(self, command: str) -> AsyncIterator[Response]:
        """Send ``command`` and yield its untagged responses as they arrive; raises on NO/BAD.

        Breaking out of the iteration early leaves the connection unusable (``broken``)."""
        tag = self._next_tag()
        await self._send(tag + b" " + command.encode("utf-8") + b"\r\n")
        done = False
        try:
            while True:
                response = await self._read()
                if response.tag == "*":
                    if response.kind == "BYE":
                        raise TransientError("the server closed the session", code="BYE")
                    yield response
                elif response.tag == tag.decode():
                    done = True
                    _check(response)
                    return
        finally:
            if not done:
                self.broken = True

    async def run_tagged(
        self, command: str, *, literal: bytes | None = None
    ) -> tuple[list[Response], Response]:
        """Like ``run``, and also the tagged OK, whose response code some commands answer in
        (``COPYUID`` of UID COPY, ``APPENDUID`` of APPEND). With ``literal`` the command ends
        with those bytes as a synchronising literal (APPEND's message: any bytes)."""
        tag = self._next_tag()
        line = tag + b" " + command.encode("utf-8")
        if literal is None:
            await self._send(line + b"\r\n")
        else:
            await self._send(line + b" {%d}\r\n" % len(literal))
            await self._expect_continuation(tag)
            await self._send(literal + b"\r\n")
        untagged: list[Response] = []
        return untagged, await self._finish(tag, untagged)

    async def _simple(self, line: bytes) -> Response:
        tag = self._next_tag()
        await self._send(tag + b" " + line + b"\r\n")
        return await self._finish(tag)

    async def _finish(self, tag: bytes, untagged: list[Response] | None = None) -> Response:
        while True:
            response = await self._read()
            if response.tag == tag.decode():
                _check(response)
                return response
            if response.kind == "BYE":
                raise TransientError("the server closed the session", code="BYE")
            if untagged is not None and response.tag == "*":
                untagged.append(response)

    async def _expect_continuation(self, tag: bytes) -> None:
        while True:
            response = await self._read()
            if response.tag == "+":
                return
            if response.tag == tag.decode():
                _check(response)
                raise ProviderError("the server did not ask for the literal", code="PROTOCOL")

    async def send_line(self, line: str) -> None:
        """Send a raw line (``DONE`` ends IDLE)."""
        await self._send(line.encode() + b"\r\n")

    def new_tag(self) -> str:
        return self._next_tag().decode()

    async def read(self, wait: float | None = None) -> Response:
        """The next response, waiting at most ``wait`` seconds (default: the connection's)."""
        return await self._read(wait)

    # -- I/O -----------------------------------------------------------------------------------

    def _next_tag(self) -> bytes:
        return b"I%d" % next(self._tags)

    async def _send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout(self._timeout):
                await self._writer.drain()
        except TimeoutError:
            self.broken = True
            raise TransientError("the server stopped reading", code="TIMEOUT") from None
        except OSError as error:
            self.broken = True
            raise _lost(error) from None

    async def _read(self, wait: float | None = None) -> Response:
        texts: list[bytes] = []
        literals: list[bytes] = []
        try:
            async with asyncio.timeout(self._timeout if wait is None else wait):
                while True:
                    line = await self._reader.readuntil(b"\r\n")
                    marker = _LITERAL_AT_END.search(line)
                    if marker is None:
                        texts.append(line[:-2])
                        break
                    texts.append(line[:-2])
                    literals.append(await self._reader.readexactly(int(marker.group(1))))
        except TimeoutError:
            self.broken = True
            raise TransientError("the IMAP server stopped answering", code="TIMEOUT") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as error:
            self.broken = True
            raise _lost(error) from None
        try:
            return parse_response(b"".join(texts), literals)
        except ProtocolError as error:
            self.broken = True
            raise PermanentError(f"unreadable IMAP response ({error})", code="PROTOCOL") from None

    async def logout(self) -> None:
        """Say goodbye politely when the connection is healthy; close it either way."""
        if not self.broken:
            try:
                async with asyncio.timeout(2):
                    await self._simple(b"LOGOUT")
            except (ProviderError, TimeoutError):
                pass
        self.abort()

    def abort(self) -> None:
        self.broken = True
        self._writer.close()


class CommandRefused(ProviderError):
    """A NO answer; callers turn it into what it means for their command."""

    code = "NO"

    def __init__(self, response: Response) -> None:
        super().__init__(f"the server answered NO ({response.code_name or 'no code'})")
        self.response = response


def _check(response: Response) -> None:
    if response.kind == "OK":
        return
    if response.kind == "NO":
        raise CommandRefused(response)
    raise PermanentError("the server rejected a command as BAD", code="PROTOCOL")


async def _connect(
    host: str, port: int, io_timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(io_timeout):
            addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, TimeoutError, UnicodeError) as error:
        raise TransientError(f"{host!r} does not resolve ({_reason(error)})", code="DNS") from None
    last: BaseException | None = None
    for family, _, proto, _, address in addresses:
        try:
            async with asyncio.timeout(io_timeout):
                return await asyncio.open_connection(
                    str(address[0]), int(address[1]), limit=READ_LIMIT, family=family, proto=proto
                )
        except (TimeoutError, OSError) as error:
            last = error
    reason = "no address" if last is None else _reason(last)
    raise TransientError(f"cannot connect to {host}:{port} ({reason})", code="CONNECT")


def _lost(error: BaseException) -> TransientError:
    return TransientError(f"connection lost ({type(error).__name__})", code="CONNECTION_LOST")


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return error.reason or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


async def check_login(
    endpoint: ImapEndpoint,
    password: Secret,
    *,
    ssl_context: ssl.SSLContext | None = None,
    io_timeout: float = DEFAULT_TIMEOUT,
) -> frozenset[str]:
    """Connect, log in and log out; the server's capabilities, or a typed error by stage."""
    connection = await ImapConnection.open(
        endpoint, password, ssl_context=ssl_context, io_timeout=io_timeout
    )
    capabilities = connection.capabilities
    await connection.logout()
    return capabilities
