"""Keeping each account's push registration current, from the sync worker.

``PushRegistrar`` is the engine's ``after_sync`` hook (``sync.engine.sync_account``): after a
run caught up, with the run's adapter (its token source, quota slots, lease), it looks at the
account's ``PushRegistration`` row and, only when that row says so (``renew_after`` passed, or
no row yet), calls the provider::

    Gmail, gmail_push_topic set     users.watch(topic)  -> row(expires_at = Gmail's expiration,
                                    renew_after = now + 1 day)     (Google: renew daily)
    Graph, change notifications on  PATCH the subscription to now + 3 days, or (none, or Graph
                                    no longer has it: 404) create one on me/messages with a new
                                    random clientState -> row(subscription id, SHA-256 of the
                                    clientState, expires_at, renew_after = expires_at - 1 day)
    push switched off               users.stop / DELETE the subscription, best effort; row gone
    the provider refused            row(last_error_code, renew_after = now + 15 min); the
                                    sync itself is untouched: the fallback poll goes on

Runs are leased per account (``sync.jobs``), so two workers never register one account at
once. The push endpoints (``app.services.push_gmail``, ``push_graph``) make accounts due; a
Graph lifecycle event moves ``renew_after`` to now (reauthorizationRequired) or forgets the
subscription (subscriptionRemoved), and the run that follows renews or recreates it here.

Where state lives: only the ``push_registrations`` table; the clientState itself exists only in
this process while Graph is asked to subscribe. Nothing here logs a secret or fails a sync.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from app import clock
from app.models import Account, PushRegistration
from app.services.push_graph import (
    GRAPH_LIFECYCLE_PATH,
    GRAPH_NOTIFICATION_PATH,
    client_state_digest,
)
from app.settings import Settings
from app.types import Provider
from sync.providers import gmail_watch, graph_subscriptions
from sync.providers.adapter import MailboxAdapter
from sync.providers.errors import ProviderError
from sync.providers.gmail import GmailAdapter
from sync.providers.graph import GraphAdapter
from sync.providers.graph_client import ItemNotFound
from vault import Secret

logger = logging.getLogger("inbox_api.push")

GMAIL_RENEW_EVERY = timedelta(days=1)
GRAPH_LIFETIME = timedelta(days=3)
GRAPH_RENEW_BEFORE_EXPIRY = timedelta(days=1)
RETRY_AFTER_FAILURE = timedelta(minutes=15)


class PushRegistrar:
    """``await registrar(account, adapter)``: register or renew the account's push if due."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.gmail_push_topic or None
        self._graph_enabled = settings.graph_change_notifications
        public_url = settings.public_url.rstrip("/")
        self._notification_url = public_url + GRAPH_NOTIFICATION_PATH
        self._lifecycle_url = public_url + GRAPH_LIFECYCLE_PATH

    async def __call__(self, account: Account, adapter: MailboxAdapter) -> None:
        try:
            await self._keep_current(account, adapter)
        except Exception:  # the database, or a bug: the sync that ran stays a success
            logger.exception("account %s: push registration failed unexpectedly", account.id)

    async def _keep_current(self, account: Account, adapter: MailboxAdapter) -> None:
        registration = await PushRegistration.get_or_none(account_id=account.id)
        if not self._wanted(adapter):
            if registration is not None:
                await self._withdraw(registration, adapter)
            return
        if registration is not None and registration.renew_after > clock.now():
            return
        try:
            if isinstance(adapter, GmailAdapter) and self._topic:
                fields = await self._watch_gmail(adapter, self._topic)
            elif isinstance(adapter, GraphAdapter):
                fields = await self._subscribe_graph(adapter, registration)
            else:
                return
        except ProviderError as error:
            logger.warning("account %s: push registration failed (%s)", account.id, error.code)
            fields = {
                "last_error_code": error.code,
                "renew_after": clock.now() + RETRY_AFTER_FAILURE,
            }
        provider = Provider.GMAIL if isinstance(adapter, GmailAdapter) else Provider.GRAPH
        await PushRegistration.update_or_create(
            {"provider": provider, **fields}, account_id=account.id
        )

    def _wanted(self, adapter: MailboxAdapter) -> bool:
        if isinstance(adapter, GmailAdapter):
            return self._topic is not None
        return isinstance(adapter, GraphAdapter) and self._graph_enabled

    async def _watch_gmail(self, adapter: GmailAdapter, topic: str) -> dict[str, Any]:
        grant = await gmail_watch.watch(gmail_watch.gmail_client_of(adapter), topic)
        now = clock.now()
        return {
            "external_id": None,
            "client_state_digest": None,
            "expires_at": grant.expires_at,
            "renew_after": min(now + GMAIL_RENEW_EVERY, grant.expires_at - GMAIL_RENEW_EVERY),
            "last_error_code": None,
        }

    async def _subscribe_graph(
        self, adapter: GraphAdapter, registration: PushRegistration | None
    ) -> dict[str, Any]:
        client = graph_subscriptions.graph_client_of(adapter)
        expires_at = clock.now() + GRAPH_LIFETIME
        fields: dict[str, Any] = {"last_error_code": None}
        subscription = None
        if registration is not None and registration.external_id:
            try:
                subscription = await graph_subscriptions.renew(
                    client, registration.external_id, expires_at
                )
            except ItemNotFound:
                subscription = None  # expired or removed at Graph: subscribe again
        if subscription is None:
            client_state = secrets.token_urlsafe(32)
            subscription = await graph_subscriptions.create(
                client,
                graph_subscriptions.SubscriptionRequest(
                    self._notification_url, self._lifecycle_url, Secret(client_state), expires_at
                ),
            )
            fields["client_state_digest"] = client_state_digest(client_state)
        return {
            **fields,
            "external_id": subscription.id,
            "expires_at": subscription.expires_at,
            "renew_after": _renew_graph_at(subscription.expires_at),
        }

    async def _withdraw(self, registration: PushRegistration, adapter: MailboxAdapter) -> None:
        """Push was switched off: tell the provider (best effort), then forget the row."""
        try:
            if isinstance(adapter, GmailAdapter):
                await gmail_watch.stop(gmail_watch.gmail_client_of(adapter))
            elif isinstance(adapter, GraphAdapter) and registration.external_id:
                await graph_subscriptions.delete(
                    graph_subscriptions.graph_client_of(adapter), registration.external_id
                )
        except ProviderError as error:
            logger.info(
                "account %s: withdrawing push failed (%s)", registration.account_id, error.code
            )
        await registration.delete()


def _renew_graph_at(expires_at: datetime) -> datetime:
    return max(clock.now(), expires_at - GRAPH_RENEW_BEFORE_EXPIRY)
