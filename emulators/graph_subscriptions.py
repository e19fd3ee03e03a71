"""Graph change notifications for mail (PROVIDERS.md M8): subscriptions and their deliveries.

    POST /subscriptions  -> validate: POST notificationUrl?validationToken=T, the receiver must
                            answer 200 with T as text/plain within 10 s, else 400
    store change         -> queue -> delivery thread -> POST {"value": [notification]} to the
                            notificationUrl (2xx within 3 s expected; failures are logged, not
                            retried)
    lifecycle events     -> `send_lifecycle_event` POSTs to lifecycleNotificationUrl

Resources understood: `me/messages`, `me/mailFolders('{id or name}')/messages`,
`me/mailFolders/{id}/messages`, and the same under `users/{id}`. Expired subscriptions stop
delivering and disappear. Deliveries run on one daemon thread with its own httpx client, which
trusts the given CA, so receivers can (and by default must) serve https.
"""

from __future__ import annotations

import queue
import re
import secrets
import ssl
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx

from emulators.graph_errors import GraphError, invalid_request
from emulators.graph_json import change_key
from emulators.graph_store import GraphStore, MailChange
from emulators.graph_types import Clock, IdType, JSONObject

MAX_MAIL_MINUTES = 10_080
VALIDATION_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 3.0
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_RESOURCE = re.compile(
    r"^/?(?:me|users/(?P<user>[^/]+))/(?:mailfolders(?:\('(?P<quoted>[^']+)'\)|/(?P<plain>[^/]+))/)?"
    r"messages$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Subscription:
    id: str
    user_id: str
    app_id: str
    resource: str
    folder_id: str | None
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: datetime
    id_type: IdType

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creatorId": self.user_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
        }


@dataclass(frozen=True)
class Delivery:
    """One POST to a receiver, for tests to inspect."""

    url: str
    body: JSONObject
    status: int | None
    error: str | None


class SubscriptionHub:
    def __init__(
        self,
        store: GraphStore,
        clock: Clock,
        *,
        tenant_id: str,
        verify: ssl.SSLContext | bool = True,
        require_https: bool = True,
        validation_timeout: float = VALIDATION_TIMEOUT,
    ) -> None:
        self._store = store
        self.validation_timeout = validation_timeout
        self._clock = clock
        self._tenant_id = tenant_id
        self._verify = verify
        self.require_https = require_https
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[str, JSONObject] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        store.add_listener(self._on_change)

    # -- the API's side -----------------------------------------------------------------------

    async def create(
        self, user_id: str, app_id: str, body: JSONObject, id_type: IdType
    ) -> Subscription:
        resource = str(body.get("resource", ""))
        match = _RESOURCE.match(resource)
        if match is None:
            raise invalid_request(f"Resource '{resource}' is not supported for subscriptions.")
        if match.group("user") and match.group("user") not in (
            user_id,
            self._store.address_of(user_id)[0],
        ):
            raise GraphError(403, "ExtensionError", "Operation: Create; Access is denied.")
        folder_ref = match.group("quoted") or match.group("plain")
        folder_id = self._store.folder(user_id, folder_ref).id if folder_ref else None
        change_types = frozenset(str(body.get("changeType", "")).split(","))
        if not change_types or not change_types <= {"created", "updated", "deleted"}:
            raise invalid_request("changeType must be a list of created, updated, deleted.")
        client_state = body.get("clientState")
        if client_state is not None and len(str(client_state)) > 128:
            raise invalid_request("clientState must be at most 128 characters.")
        subscription = Subscription(
            id=str(uuid.uuid4()),
            user_id=user_id,
            app_id=app_id,
            resource=resource,
            folder_id=folder_id,
            change_types=change_types,
            notification_url=self._checked_url(body.get("notificationUrl")),
            lifecycle_url=(
                self._checked_url(body["lifecycleNotificationUrl"])
                if body.get("lifecycleNotificationUrl")
                else None
            ),
            client_state=None if client_state is None else str(client_state),
            expires_at=self._checked_expiry(body.get("expirationDateTime")),
            id_type=id_type,
        )
        await self._validate(subscription.notification_url)
        if subscription.lifecycle_url:
            await self._validate(subscription.lifecycle_url)
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        return subscription

    def get(self, user_id: str, subscription_id: str) -> Subscription:
        with self._lock:
            subscription = self._live().get(subscription_id)
        if subscription is None or subscription.user_id != user_id:
            raise GraphError(
                404, "ResourceNotFound", f"The object '{subscription_id}' doesn't exist."
            )
        return subscription

    def subscriptions_of(self, user_id: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self._live().values() if s.user_id == user_id]

    def renew(self, user_id: str, subscription_id: str, body: JSONObject) -> Subscription:
        renewed = replace(
            self.get(user_id, subscription_id),
            expires_at=self._checked_expiry(body.get("expirationDateTime")),
        )
        with self._lock:
            self._subscriptions[subscription_id] = renewed
        return renewed

    def delete(self, user_id: str, subscription_id: str) -> None:
        self.get(user_id, subscription_id)
        with self._lock:
            self._subscriptions.pop(subscription_id, None)

    # -- test controls ------------------------------------------------------------------------

    def send_lifecycle_event(self, subscription_id: str, event: str) -> None:
        """Post a lifecycle notification; `subscriptionRemoved` also drops the subscription."""
        if event not in LIFECYCLE_EVENTS:
            raise invalid_request(f"Unknown lifecycle event '{event}'.")
        with self._lock:
            subscription = self._subscriptions[subscription_id]
            if event == "subscriptionRemoved":
                del self._subscriptions[subscription_id]
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": subscription.to_json()["expirationDateTime"],
            "tenantId": self._tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        url = subscription.lifecycle_url or subscription.notification_url
        self._enqueue(url, {"value": [notification]})

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_until_delivered(self, timeout: float = 5.0) -> bool:
        """Block until every queued notification has been attempted."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT + 2)
            self._thread = None

    # -- internals ----------------------------------------------------------------------------

    def _live(self) -> dict[str, Subscription]:
        now = datetime.fromtimestamp(self._clock(), UTC)
        for expired in [k for k, s in self._subscriptions.items() if s.expires_at <= now]:
            del self._subscriptions[expired]
        return self._subscriptions

    def _checked_url(self, url: object) -> str:
        text = str(url or "")
        if not text.startswith(("https://", "http://")) or (
            self.require_https and not text.startswith("https://")
        ):
            raise invalid_request("Subscription notification URLs must use https.")
        return text

    def _checked_expiry(self, value: object) -> datetime:
        try:
            expires_at = datetime.fromisoformat(str(value))
        except ValueError:
            raise invalid_request("expirationDateTime is missing or invalid.") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        now = datetime.fromtimestamp(self._clock(), UTC)
        if expires_at <= now:
            raise invalid_request("Subscription expiration must be in the future.")
        if expires_at > now + timedelta(minutes=MAX_MAIL_MINUTES):
            raise invalid_request(
                f"Subscription expiration can only be {MAX_MAIL_MINUTES} minutes in the future."
            )
        return expires_at

    async def _validate(self, url: str) -> None:
        token = f"Validation: Testing client application reachability {secrets.token_hex(8)}"
        try:
            async with httpx.AsyncClient(verify=self._verify, trust_env=False) as client:
                answer = await client.post(
                    url,
                    params={"validationToken": token},
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                    timeout=self.validation_timeout,
                )
        except httpx.HTTPError as error:
            raise GraphError(
                400,
                "ValidationError",
                f"Subscription validation request failed. Notification endpoint must respond "
                f"with 200 OK to validation request. ({type(error).__name__})",
            ) from None
        if (
            answer.status_code != 200
            or answer.text != token
            or not answer.headers.get("content-type", "").startswith("text/plain")
        ):
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Response must exactly match "
                "validationToken query parameter.",
            )

    def _on_change(self, change: MailChange) -> None:
        with self._lock:
            targets = [
                s
                for s in self._live().values()
                if s.user_id == change.user_id
                and change.change_type in s.change_types
                and s.folder_id in (None, change.folder_id)
            ]
        for subscription in targets:
            message_id = change.message.id_for(subscription.id_type)
            path = f"Users/{change.user_id}/Messages/{message_id}"
            notification = {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": subscription.to_json()["expirationDateTime"],
                "changeType": change.change_type,
                "resource": path,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": path,
                    "@odata.etag": f'W/"{change_key(change.message)}"',
                    "id": message_id,
                },
                "clientState": subscription.client_state,
                "tenantId": self._tenant_id,
            }
            self._enqueue(subscription.notification_url, {"value": [notification]})

    def _enqueue(self, url: str, body: JSONObject) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="graph-notifications", daemon=True
                )
                self._thread.start()
        self._queue.put((url, body))

    def _deliver_forever(self) -> None:
        with httpx.Client(verify=self._verify, trust_env=False, timeout=DELIVERY_TIMEOUT) as client:
            while (item := self._queue.get()) is not None:
                url, body = item
                status: int | None = None
                error: str | None = None
                try:
                    # No idle keep-alive: a receiver shutting down must not wait for us.
                    status = client.post(
                        url, json=body, headers={"Connection": "close"}
                    ).status_code
                except httpx.HTTPError as failure:
                    error = type(failure).__name__
                with self._idle:
                    self._deliveries.append(Delivery(url, body, status, error))
                    self._pending -= 1
                    self._idle.notify_all()
