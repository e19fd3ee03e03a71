"""Microsoft Graph change notifications: validation, clientState checks, lifecycle events.

    POST <public_url>/push/graph?validationToken=T     -> echo T (text/plain, 200): Graph
    POST <public_url>/push/graph/lifecycle?validationToken=T  checks each URL when subscribing
    POST <public_url>/push/graph            {"value": [notification, ...]}
    POST <public_url>/push/graph/lifecycle  {"value": [lifecycle notification, ...]}

Each notification names its ``subscriptionId`` and carries the subscription's ``clientState``:
a random secret the worker (``sync.push``) gave Graph when it subscribed, stored here only as
its SHA-256 digest (``client_state_digest``; the secret has 256 bits, so a plain digest is
enough, as for API tokens). A notification whose subscription is unknown or whose clientState
does not match (compared in constant time) is ignored and counted
(``PushRegistration.rejected_notifications`` when the subscription is ours): it never makes an
account due. A genuine one makes its account due (``request_sync_now``); its lifecycle event,
if any, also tells the worker what to do at that account's next run::

    reauthorizationRequired -> renew_after = now (the worker renews the subscription)
    subscriptionRemoved     -> the subscription is forgotten (the worker creates a new one)
    missed                  -> nothing more: the sync that was asked for catches up

Nothing from a notification is logged or echoed back except the validation token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import Counter
from dataclasses import dataclass, field

from tortoise.expressions import F

from app import clock
from app.models import PushRegistration
from app.services.push_input import json_object, malformed
from app.services.sync_control import request_sync_now
from app.types import AccountId, Provider

logger = logging.getLogger("inbox_api.push")

GRAPH_NOTIFICATION_PATH = "/push/graph"
GRAPH_LIFECYCLE_PATH = "/push/graph/lifecycle"
MAX_VALIDATION_TOKEN_LENGTH = 1024
MAX_NOTIFICATIONS = 1000  # Graph batches notifications; far fewer per request in practice
MAX_FIELD_LENGTH = 255
REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
SUBSCRIPTION_REMOVED = "subscriptionRemoved"


@dataclass(frozen=True, slots=True)
class GraphNotification:
    subscription_id: str
    client_state: str | None
    lifecycle_event: str | None = None


@dataclass(slots=True)
class NotificationOutcome:
    """What a delivery led to: accounts made due, and notifications ignored."""

    accounts: set[AccountId] = field(default_factory=set)
    rejected: int = 0


def client_state_digest(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


def validation_echo(token: str) -> str:
    """The text that answers Graph's validation request, or ``MALFORMED_PUSH``."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_LENGTH:
        raise malformed("The validation token is empty or too long.")
    return token


def parse_graph_notifications(body: bytes) -> list[GraphNotification]:
    """The notifications of one delivery, or ``MALFORMED_PUSH``."""
    items = json_object(body).get("value")
    if not isinstance(items, list) or not 0 < len(items) <= MAX_NOTIFICATIONS:
        raise malformed("The body has no list of notifications.")
    notifications = []
    for item in items:
        if not isinstance(item, dict):
            raise malformed("A notification is not an object.")
        subscription_id = _optional_text(item, "subscriptionId")
        if subscription_id is None:
            raise malformed("A notification has no subscriptionId.")
        client_state = _optional_text(item, "clientState")
        event = _optional_text(item, "lifecycleEvent")
        notifications.append(GraphNotification(subscription_id, client_state, event))
    return notifications


async def handle_graph_notifications(
    notifications: list[GraphNotification],
) -> NotificationOutcome:
    """Make the accounts of genuine notifications due and act on their lifecycle events."""
    outcome = NotificationOutcome()
    registrations = {
        registration.external_id: registration
        for registration in await PushRegistration.filter(
            provider=Provider.GRAPH,
            external_id__in=list({n.subscription_id for n in notifications}),
        )
    }
    rejected_per_registration: Counter[int] = Counter()
    for notification in notifications:
        registration = registrations.get(notification.subscription_id)
        if registration is None or not _client_state_matches(notification, registration):
            outcome.rejected += 1
            if registration is not None:
                rejected_per_registration[registration.id] += 1
            continue
        await _on_lifecycle_event(registration, notification.lifecycle_event)
        outcome.accounts.add(AccountId(registration.account_id))
    for registration_id, count in rejected_per_registration.items():  # one write per row
        await PushRegistration.filter(id=registration_id).update(
            rejected_notifications=F("rejected_notifications") + count
        )
    for account_id in outcome.accounts:
        await request_sync_now(account_id)
    if outcome.rejected:
        logger.warning("graph push: %d notification(s) ignored", outcome.rejected)
    return outcome


async def _on_lifecycle_event(registration: PushRegistration, event: str | None) -> None:
    mine = PushRegistration.filter(id=registration.id, external_id=registration.external_id)
    if event == REAUTHORIZATION_REQUIRED:
        await mine.update(renew_after=clock.now())
    elif event == SUBSCRIPTION_REMOVED:
        await mine.update(external_id=None, client_state_digest=None, renew_after=clock.now())


def _client_state_matches(notification: GraphNotification, registration: PushRegistration) -> bool:
    presented = client_state_digest(notification.client_state or "")
    stored = registration.client_state_digest or ""
    return hmac.compare_digest(presented, stored) and bool(stored)


def _optional_text(item: dict[str, object], key: str) -> str | None:
    """A short string field of a notification, None when absent; ``MALFORMED_PUSH`` otherwise."""
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD_LENGTH:
        raise malformed(f"A notification has a bad {key}.")
    return value
