"""Graph change notifications over https: the validation handshake, deliveries, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from emulators.graph_testing import EmulatedMailbox, ManualClock, ServedEmulator
from emulators.runner import serve_in_thread

clock = ManualClock()


@dataclass
class Receiver:
    """A webhook endpoint: /hook echoes validation tokens, /wrong answers something else, /slow
    echoes after a second."""

    base_url: str = ""
    validations: list[str] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                self.validations.append(token)
                if request.url.path == "/slow":
                    await asyncio.sleep(1)
                    return PlainTextResponse(token)
                answer = token if request.url.path == "/hook" else "not the token"
                return PlainTextResponse(answer)
            self.posts.append(await request.json())
            return Response(status_code=202)

        return Starlette(
            routes=[Route(p, hook, methods=["POST"]) for p in ("/hook", "/wrong", "/slow")]
        )

    def notifications(self, subscription_id: str) -> list[dict[str, Any]]:
        return [
            n
            for post in self.posts
            for n in post["value"]
            if n["subscriptionId"] == subscription_id
        ]


@pytest.fixture(scope="module")
def receiver(served: ServedEmulator) -> Iterator[Receiver]:
    receiver = Receiver()
    tls = served.tls
    with serve_in_thread(
        receiver.app(), ssl_certfile=str(tls.cert_path), ssl_keyfile=str(tls.key_path)
    ) as server:
        receiver.base_url = server.base_url
        yield receiver


def in_minutes(minutes: float) -> str:
    moment = datetime.fromtimestamp(clock(), UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def subscription_body(receiver: Receiver, **overrides: Any) -> dict[str, Any]:
    return {
        "changeType": "created,updated",
        "notificationUrl": f"{receiver.base_url}/hook",
        "resource": "me/mailFolders('Inbox')/messages",
        "expirationDateTime": in_minutes(60),
        "clientState": "opaque-client-state",
    } | overrides


def test_validation_handshake_then_notifications_for_changes(
    served: ServedEmulator, receiver: Receiver, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    created = graph.post("subscriptions", json=subscription_body(receiver))
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert receiver.validations[-1].startswith("Validation:")

    message = served.emulator.add_message(mailbox.oid, subject="ping")
    served.emulator.update_message(mailbox.oid, message.rest_id, is_read=True)
    served.emulator.add_message(mailbox.oid, subject="elsewhere", folder="archive")
    served.emulator.delete_message(mailbox.oid, message.rest_id)
    assert served.emulator.wait_for_notifications()

    notifications = receiver.notifications(subscription["id"])
    assert [n["changeType"] for n in notifications] == ["created", "updated"]
    first = notifications[0]
    assert first["clientState"] == "opaque-client-state"
    assert first["tenantId"] == served.emulator.tenant_id
    assert first["resourceData"]["id"] == message.rest_id
    assert first["resource"] == f"Users/{mailbox.oid}/Messages/{message.rest_id}"
    assert all(d.status == 202 for d in served.emulator.notifications())


def test_immutable_id_subscriptions_notify_immutable_ids(
    served: ServedEmulator, receiver: Receiver, mailbox: EmulatedMailbox
) -> None:
    with served.graph_client(mailbox.token, immutable_ids=True) as graph:
        body = subscription_body(receiver, resource="me/messages", changeType="created,deleted")
        subscription = graph.post("subscriptions", json=body).json()
    message = served.emulator.add_message(mailbox.oid, subject="tracked")
    served.emulator.move_message(mailbox.oid, message.rest_id, "archive")
    assert served.emulator.wait_for_notifications()

    notifications = receiver.notifications(subscription["id"])
    assert [(n["changeType"], n["resourceData"]["id"]) for n in notifications] == [
        ("created", message.immutable_id),
        ("deleted", message.immutable_id),
        ("created", message.immutable_id),
    ]


def test_a_receiver_that_does_not_echo_the_token_fails_validation(
    receiver: Receiver, graph: httpx.Client
) -> None:
    answer = graph.post(
        "subscriptions",
        json=subscription_body(receiver, notificationUrl=f"{receiver.base_url}/wrong"),
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ValidationError"
    assert graph.get("subscriptions").json()["value"] == []


def test_validation_must_answer_in_time(
    served: ServedEmulator, receiver: Receiver, graph: httpx.Client
) -> None:
    hub = served.emulator.subscriptions
    hub.validation_timeout = 0.3  # stands in for Graph's 10 s
    try:
        body = subscription_body(receiver, notificationUrl=f"{receiver.base_url}/slow")
        answer = graph.post("subscriptions", json=body)
    finally:
        hub.validation_timeout = 10.0
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ValidationError"


@pytest.mark.parametrize(
    "override",
    [
        {"expirationDateTime": in_minutes(10_081)},
        {"expirationDateTime": in_minutes(-1)},
        {"notificationUrl": "http://127.0.0.1:9/hook"},
        {"resource": "me/events"},
        {"changeType": "created,exploded"},
    ],
)
def test_invalid_subscriptions_are_refused(
    receiver: Receiver, graph: httpx.Client, override: dict[str, str]
) -> None:
    answer = graph.post("subscriptions", json=subscription_body(receiver, **override))
    assert answer.status_code == 400


def test_renew_delete_and_expiry(
    served: ServedEmulator, receiver: Receiver, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    kept = graph.post("subscriptions", json=subscription_body(receiver)).json()
    dropped = graph.post("subscriptions", json=subscription_body(receiver)).json()
    renewed = graph.patch(
        f"subscriptions/{kept['id']}", json={"expirationDateTime": in_minutes(10_000)}
    )
    assert renewed.status_code == 200
    assert graph.delete(f"subscriptions/{dropped['id']}").status_code == 204

    clock.advance(61 * 60)
    served.emulator.add_message(mailbox.oid, subject="after an hour")
    assert served.emulator.wait_for_notifications()

    assert len(receiver.notifications(kept["id"])) == 1
    assert receiver.notifications(dropped["id"]) == []
    clock.advance(10_000 * 60)
    with served.graph_client(served.token_for(mailbox.oid)) as later:
        assert later.get(f"subscriptions/{kept['id']}").status_code == 404


def test_lifecycle_events_go_to_the_lifecycle_url(
    served: ServedEmulator, receiver: Receiver, graph: httpx.Client
) -> None:
    body = subscription_body(receiver, lifecycleNotificationUrl=f"{receiver.base_url}/hook")
    subscription = graph.post("subscriptions", json=body).json()

    served.emulator.send_lifecycle_event(subscription["id"], "reauthorizationRequired")
    assert served.emulator.wait_for_notifications()

    [event] = receiver.notifications(subscription["id"])
    assert event["lifecycleEvent"] == "reauthorizationRequired"
    assert event["clientState"] == "opaque-client-state"
