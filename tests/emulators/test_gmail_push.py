"""emulators.gmail_push: watch notifications POSTed like a Pub/Sub push subscription."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulators.corpus import make_mailbox
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import serve_in_thread

ME = "erin@example.com"
TOPIC = "projects/demo/topics/gmail"
INTERVAL = 0.3


class Webhook:
    """The app's push endpoint: records every envelope it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def endpoint(self, request: Request) -> Response:
        self.received.append(await request.json())
        return Response(status_code=204)

    def notifications(self) -> list[dict[str, Any]]:
        return [json.loads(base64.b64decode(e["message"]["data"])) for e in self.received]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, str, Webhook, str]]:
    emulator = GoogleEmulator(seed=8, push_min_interval=INTERVAL)
    webhook = Webhook()
    receiver = Starlette(routes=[Route("/push", webhook.endpoint, methods=["POST"])])
    with serve_in_thread(emulator.app) as server, serve_in_thread(receiver) as hook:
        yield emulator, server.base_url, webhook, f"{hook.base_url}/push"


@pytest.fixture
def env(
    served: tuple[GoogleEmulator, str, Webhook, str],
) -> Iterator[tuple[GoogleEmulator, httpx.Client, Webhook]]:
    emulator, base_url, webhook, push_url = served
    emulator.reset()
    webhook.received.clear()
    emulator.register_client("c", "s", [])
    emulator.add_user(ME)
    emulator.push.subscribe(TOPIC, push_url)
    token = emulator.identity.issue_tokens(ME, "c", [SCOPE_FULL]).access_token
    with httpx.Client(
        base_url=f"{base_url}/gmail/v1/users/me",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(),
    ) as api:
        yield emulator, api, webhook


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_changes_are_notified_at_most_once_per_interval_with_the_latest_history_id(
    env: tuple[GoogleEmulator, httpx.Client, Webhook],
) -> None:
    emulator, api, webhook = env
    assert api.post("/watch", json={"topicName": TOPIC}).status_code == 200
    mailbox = emulator.mailbox(ME)
    started = time.monotonic()
    for raw in make_mailbox(1, 6):
        mailbox.deliver(raw)
    wait_for(
        lambda: (
            bool(webhook.notifications())
            and webhook.notifications()[-1]["historyId"] == mailbox.history_id
        )
    )
    notifications = webhook.notifications()
    assert all(n["emailAddress"] == ME for n in notifications)
    assert len(notifications) <= 1 + (time.monotonic() - started) / INTERVAL
    assert len(notifications) < 6  # folded, not one per change
    envelope = webhook.received[-1]
    assert envelope["subscription"] == "projects/emulator/subscriptions/gmail"
    assert envelope["message"]["messageId"]
    assert envelope["message"]["publishTime"].endswith("Z")


def test_label_filter_stop_and_no_watch(env: tuple[GoogleEmulator, httpx.Client, Webhook]) -> None:
    emulator, api, webhook = env
    mailbox = emulator.mailbox(ME)
    delivered = mailbox.deliver(make_mailbox(2, 1)[0])  # no watch yet: nothing to tell
    api.post("/watch", json={"topicName": TOPIC, "labelIds": ["STARRED"]})
    mailbox.deliver(make_mailbox(3, 1)[0])  # INBOX mail, not STARRED
    time.sleep(INTERVAL)
    assert webhook.received == []
    mailbox.modify(delivered.id, add=["STARRED"])
    wait_for(lambda: len(webhook.received) == 1)
    api.post("/stop")
    mailbox.modify(delivered.id, remove=["STARRED"])
    time.sleep(INTERVAL * 2)
    assert len(webhook.received) == 1


def test_notifications_can_be_dropped(env: tuple[GoogleEmulator, httpx.Client, Webhook]) -> None:
    emulator, api, webhook = env
    api.post("/watch", json={"topicName": TOPIC})
    emulator.push.drop_next(1)
    mailbox = emulator.mailbox(ME)
    mailbox.deliver(make_mailbox(4, 1)[0])
    wait_for(lambda: emulator.snapshot()["push"]["dropped"] == 1)
    time.sleep(INTERVAL)
    mailbox.deliver(make_mailbox(5, 1)[0])
    wait_for(lambda: len(webhook.received) == 1)
    assert webhook.notifications()[0]["historyId"] == mailbox.history_id
    assert emulator.snapshot()["push"] == {"sent": 1, "dropped": 1, "failed": 0}
