"""The production adapters: one ``MailboxAdapter`` per connected account, with its token source.

The worker builds one factory at start-up and hands ``factory.open_adapter`` to the engine
(``sync.engine.AdapterFactory``), which asks it for an adapter per job::

    factory = AdapterFactory(settings, events)
    adapter = await factory.open_adapter(account)   # Gmail, Graph or ImapActionAdapter
    try:
        ...                                         # full_sync_page, changes_since, ...
    finally:
        await adapter.aclose()
    await factory.aclose()                          # at shutdown: the pooled HTTP clients

Base URLs come from the settings (``gmail_api_base``, ``graph_api_base``), and so does the CA a
test or private cloud needs (``google_ca_file``, ``microsoft_ca_file``). The adapters share one
pooled HTTP client per provider; the token source (``app.services.token_sources``) reads and
refreshes the account's sealed tokens and raises ``AuthRevoked`` once the grant is gone, after
marking the account ``NEEDS_REAUTH``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx

from app.events import EventBus
from app.models import Account
from app.services.connect_gmail import refresh_google_token
from app.services.connect_imap import imap_ssl_context, is_loopback
from app.services.connect_microsoft import refresh_microsoft_token
from app.services.credentials import CredentialUnavailable, read_credential
from app.services.token_sources import OAuthTokenSource, provider_http
from app.settings import Settings
from app.types import AccountId, CredentialKind, Provider
from sync.providers.adapter import MailboxAdapter
from sync.providers.errors import AuthRevoked, PermanentError
from sync.providers.gmail import GmailAdapter
from sync.providers.graph import GraphAdapter
from sync.providers.http import DEFAULT_TIMEOUT
from sync.providers.imap_actions import ImapActionAdapter
from sync.providers.imap_connection import ImapEndpoint
from sync.providers.smtp import SmtpEndpoint, SmtpSender
from vault import Secret


async def _imap_password(account_id: AccountId) -> Secret:
    """The sealed IMAP password, read at each login; a missing or unreadable one needs the
    owner (the account is already marked by ``read_credential`` when it cannot be opened)."""
    try:
        password = await read_credential(account_id, CredentialKind.IMAP_PASSWORD)
    except CredentialUnavailable as error:
        raise AuthRevoked("the IMAP password cannot be read", code=error.code) from error
    if password is None:
        raise AuthRevoked("no IMAP password is stored", code="NO_CREDENTIAL")
    return password


async def _smtp_password(account_id: AccountId) -> Secret:
    """The sealed SMTP password, or the IMAP one when the account has none of its own."""
    try:
        password = await read_credential(account_id, CredentialKind.SMTP_PASSWORD)
    except CredentialUnavailable as error:
        raise AuthRevoked("the SMTP password cannot be read", code=error.code) from error
    return password if password is not None else await _imap_password(account_id)


def _smtp_sender(settings: Settings, account: Account) -> SmtpSender | None:
    """The account's SMTP sender, if it has a server. Plaintext only where connecting allows
    it now (the operator may have withdrawn loopback plaintext since the account was saved)."""
    endpoint = SmtpEndpoint.from_settings(account.provider_settings)
    if endpoint is None:
        return None
    return SmtpSender(
        endpoint,
        partial(_smtp_password, AccountId(account.id)),
        ssl_context=imap_ssl_context(settings),
        io_timeout=settings.imap_connect_timeout_seconds,
        plaintext_allowed=settings.imap_allow_plaintext_loopback and is_loopback(endpoint.host),
    )


class AdapterFactory:
    """Builds the adapter of an account; owns the HTTP clients those adapters share."""

    def __init__(self, settings: Settings, events: EventBus) -> None:
        self._settings = settings
        self._events = events
        self._clients: dict[Provider, httpx.AsyncClient] = {}

    async def open_adapter(self, account: Account) -> MailboxAdapter:
        """The adapter of ``account`` (an ``sync.engine.AdapterFactory``); ``PermanentError``
        for a provider without one here. Nothing is fetched until the adapter is used."""
        settings, account_id = self._settings, AccountId(account.id)
        if account.provider == Provider.GMAIL:
            refresh = partial(refresh_google_token, settings)
            return GmailAdapter(
                settings.gmail_api_base,
                OAuthTokenSource(account_id, refresh, self._events),
                http=self._client(Provider.GMAIL, settings.google_ca_file),
            )
        if account.provider == Provider.GRAPH:
            refresh = partial(refresh_microsoft_token, settings)
            return GraphAdapter(
                settings.graph_api_base,
                OAuthTokenSource(account_id, refresh, self._events),
                http=self._client(Provider.GRAPH, settings.microsoft_ca_file),
            )
        if account.provider == Provider.IMAP:
            return ImapActionAdapter(
                ImapEndpoint.from_settings(account.provider_settings),
                partial(_imap_password, account_id),
                smtp=_smtp_sender(settings, account),
                ssl_context=imap_ssl_context(settings),
                io_timeout=settings.imap_connect_timeout_seconds,
            )
        raise PermanentError(f"no adapter for {account.provider.value}", code="NO_ADAPTER")

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _client(self, provider: Provider, ca_file: Path | None) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = provider_http(ca_file, timeout=DEFAULT_TIMEOUT)
        return client
