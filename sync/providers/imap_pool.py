"""The connections of one IMAP adapter: at most ``size`` at once, reused, logged in on demand.

``connection()`` lends a logged-in connection within the cap and takes it back afterwards,
unless it broke (any I/O failure, a cancelled command) or ``keep`` is False (the IDLE watch
owns its connection until it ends). Connections unused for ``MAX_IDLE_SECONDS`` are dropped
rather than reused: servers log idle sessions out after 30 minutes, often sooner.

The password is asked for at each login (``Secret`` or an async source of one, so a changed
password is picked up) and never kept. A refused login latches: every later ``connection()``
raises ``AuthRevoked`` without connecting, because retrying a wrong password gets accounts
locked at many providers. QRESYNC is enabled on every connection that offers it (RFC 7162).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sync.providers.errors import AuthRevoked, ProviderError
from sync.providers.imap_connection import ImapConnection, ImapEndpoint
from vault import Secret

PasswordSource = Callable[[], Awaitable[Secret]]
MAX_IDLE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """How to reach and log in to the server (the password is not part of it)."""

    endpoint: ImapEndpoint
    ssl_context: ssl.SSLContext | None
    io_timeout: float
    disabled: frozenset[str]


class ConnectionPool:
    """At most ``size`` logged-in connections to one mailbox."""

    def __init__(self, login: LoginSettings, password: Secret | PasswordSource, size: int) -> None:
        self.size = size
        self._login = login
        self._password = password
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[ImapConnection, float]] = []
        self._refused: AuthRevoked | None = None

    @contextlib.asynccontextmanager
    async def connection(self, *, keep: bool = True) -> AsyncIterator[ImapConnection]:
        async with self._slots:
            connection = self._reuse() if keep else None
            if connection is None:
                connection = await self._open()
            try:
                yield connection
            except ProviderError:
                raise  # typed errors mark the connection broken themselves when it is
            except BaseException:
                connection.broken = True  # cancelled or failed mid-command: state unknown
                raise
            finally:
                if keep and not connection.broken:
                    self._idle.append((connection, time.monotonic()))
                else:
                    connection.abort()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(connection.logout() for connection, _ in idle))

    def _reuse(self) -> ImapConnection | None:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if now - since < MAX_IDLE_SECONDS and not connection.broken:
                return connection
            connection.abort()
        return None

    async def _open(self) -> ImapConnection:
        if self._refused is not None:
            raise AuthRevoked("the IMAP login was refused; update the password", code="LOGIN")
        password = self._password if isinstance(self._password, Secret) else await self._password()
        login = self._login
        try:
            connection = await ImapConnection.open(
                login.endpoint, password, ssl_context=login.ssl_context, io_timeout=login.io_timeout
            )
        except AuthRevoked as refused:
            self._refused = refused
            raise
        if "QRESYNC" in connection.capabilities - login.disabled:
            try:
                await connection.run("ENABLE QRESYNC")
            except BaseException:
                connection.abort()
                raise
            connection.enabled.add("QRESYNC")
        return connection
