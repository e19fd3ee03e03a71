"""Graph change-notification subscriptions for one mailbox (PROVIDERS.md M8).

    create(client, request)       POST   /v1.0/subscriptions  -> Subscription(id, expires_at)
                                  (Graph first validates notificationUrl and
                                  lifecycleNotificationUrl: each must echo a validationToken
                                  within 10 s, so the receiving server must be up)
    renew(client, id, expires)    PATCH  /v1.0/subscriptions/{id} {expirationDateTime}
    delete(client, id)            DELETE /v1.0/subscriptions/{id}

The resource is ``me/messages`` (every folder of the mailbox, so moves and mail outside the
inbox are noticed too) with changeType ``created,updated,deleted``. A renewal or deletion of a
subscription Graph no longer has raises ``ItemNotFound``: the caller creates a new one. The
``clientState`` is passed in and never kept here; nothing here logs or touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from sync.providers.errors import PermanentError
from sync.providers.graph import GraphAdapter
from sync.providers.graph_client import GraphClient
from vault import Secret

SUBSCRIPTIONS_PATH = "/v1.0/subscriptions"
MAIL_RESOURCE = "me/messages"
CHANGE_TYPES = "created,updated,deleted"


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    notification_url: str
    lifecycle_url: str
    client_state: Secret
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    expires_at: datetime


def graph_client_of(adapter: GraphAdapter) -> GraphClient:
    """The client of a Graph adapter: subscriptions share its token source and request slots."""
    return adapter._client


async def create(client: GraphClient, request: SubscriptionRequest) -> Subscription:
    body = {
        "changeType": CHANGE_TYPES,
        "notificationUrl": request.notification_url,
        "lifecycleNotificationUrl": request.lifecycle_url,
        "resource": MAIL_RESOURCE,
        "expirationDateTime": _graph_time(request.expires_at),
        "clientState": request.client_state.reveal(),
    }
    answer = await client.send("POST", SUBSCRIPTIONS_PATH, "subscriptions.create", body)
    return _subscription(answer, "subscriptions.create")


async def renew(client: GraphClient, subscription_id: str, expires_at: datetime) -> Subscription:
    answer = await client.send(
        "PATCH",
        _path(subscription_id),
        "subscriptions.update",
        {"expirationDateTime": _graph_time(expires_at)},
    )
    return _subscription(answer, "subscriptions.update")


async def delete(client: GraphClient, subscription_id: str) -> None:
    await client.send("DELETE", _path(subscription_id), "subscriptions.delete")


def _path(subscription_id: str) -> str:
    return f"{SUBSCRIPTIONS_PATH}/{quote(subscription_id, safe='')}"


def _graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscription(answer: dict[str, object] | None, what: str) -> Subscription:
    answer = answer or {}
    subscription_id, expiry = answer.get("id"), answer.get("expirationDateTime")
    try:
        expires_at = datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
    except ValueError:
        expires_at = None
    if not isinstance(subscription_id, str) or not subscription_id or expires_at is None:
        raise PermanentError(f"{what}: Graph sent no subscription id or expiry", code="MALFORMED")
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return Subscription(subscription_id, expires_at)
