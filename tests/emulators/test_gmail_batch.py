"""emulators.gmail_batch over real HTTP: multipart batches, unordered answers, per-call charges."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

import httpx
import pytest

from emulators.gmail_batch import MAX_CALLS_PER_BATCH
from emulators.gmail_clock import ManualClock
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import serve_in_thread

ME = "alice@example.com"
BOUNDARY = "batch_boundary_42"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, str]]:
    emulator = GoogleEmulator(seed=2, clock=ManualClock(1_700_000_000.0))
    with serve_in_thread(emulator.app) as server:
        yield emulator, server.base_url


@pytest.fixture
def emulator(served: tuple[GoogleEmulator, str]) -> GoogleEmulator:
    served[0].reset()
    served[0].register_client("c", "s", ["http://127.0.0.1/cb"])
    served[0].add_user(ME)
    return served[0]


@pytest.fixture
def batch(emulator: GoogleEmulator, served: tuple[GoogleEmulator, str]) -> Iterator[httpx.Client]:
    token = emulator.identity.issue_tokens(ME, "c", [SCOPE_FULL]).access_token
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        base_url=served[1], headers=headers, verify=ssl.create_default_context()
    ) as client:
        yield client


def batch_body(calls: list[tuple[str, str, str]]) -> bytes:
    """(content id, method, path) per call, framed as google-api-python-client frames them."""
    parts = []
    for content_id, method, path in calls:
        parts.append(
            f"--{BOUNDARY}\r\nContent-Type: application/http\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: <{content_id}>\r\n\r\n"
            f"{method} {path} HTTP/1.1\r\naccept: application/json\r\n\r\n"
        )
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def send(client: httpx.Client, calls: list[tuple[str, str, str]]) -> httpx.Response:
    return client.post(
        "/batch/gmail/v1",
        content=batch_body(calls),
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )


def answers(response: httpx.Response) -> list[tuple[str, int, dict[str, str], Any]]:
    """(content id, status, headers, JSON body) of each part, in the order they came."""
    envelope = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=policy.compat32).parsebytes(envelope + response.content)
    found = []
    parts = message.get_payload()
    assert isinstance(parts, list)
    for part in parts:
        assert isinstance(part, Message)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        head, _, body = payload.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        status = int(status_line.split()[1])
        found.append((str(part["Content-ID"]), status, headers, json.loads(body) if body else None))
    return found


def test_batch_answers_every_call_out_of_order_matched_by_content_id(
    emulator: GoogleEmulator, batch: httpx.Client
) -> None:
    ids = [m.id for m in emulator.load_corpus(ME, seed=3, count=10)]
    calls = [
        (f"batch-7f3a+{n}", "GET", f"/gmail/v1/users/me/messages/{mid}?format=metadata")
        for n, mid in enumerate(ids)
    ]
    response = send(batch, calls)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
    parts = answers(response)
    order = [content_id for content_id, *_ in parts]
    expected = [f"<response-{content_id}>" for content_id, _, _ in calls]
    assert sorted(order) == sorted(expected)
    assert order != expected
    by_id = {content_id: body for content_id, status, _, body in parts if status == 200}
    for content_id, _, path in calls:
        assert by_id[f"<response-{content_id}>"]["id"] == path.split("/")[-1].split("?")[0]
    assert emulator.stats.calls("messages.get") == 10
    assert emulator.quota.usage() == {ME: 50}  # each inner call is charged


def test_inner_calls_fail_on_their_own(emulator: GoogleEmulator, batch: httpx.Client) -> None:
    message_id = emulator.load_corpus(ME, seed=4, count=1)[0].id
    emulator.faults.inject("429", method="messages.get")
    calls = [
        ("a", "GET", f"/gmail/v1/users/me/messages/{message_id}"),
        ("b", "GET", "/gmail/v1/users/me/messages/0123456789abcdef"),
        ("c", "GET", "/gmail/v1/users/me/profile"),
    ]
    statuses = {cid: status for cid, status, _, _ in answers(send(batch, calls))}
    assert statuses["<response-c>"] == 200
    assert sorted([statuses["<response-a>"], statuses["<response-b>"]]) in ([404, 429], [200, 429])


def test_the_outer_authorization_applies_inside_and_a_bad_one_fails_each_call(
    emulator: GoogleEmulator, served: tuple[GoogleEmulator, str]
) -> None:
    with httpx.Client(base_url=served[1], headers={"Authorization": "Bearer nope"}) as client:
        parts = answers(send(client, [("x", "GET", "/gmail/v1/users/me/profile")]))
    assert [(cid, status) for cid, status, _, _ in parts] == [("<response-x>", 401)]
    assert "invalid_token" in parts[0][2]["www-authenticate"]


def test_batches_are_limited_to_100_calls(batch: httpx.Client) -> None:
    calls = [(str(i), "GET", "/gmail/v1/users/me/profile") for i in range(MAX_CALLS_PER_BATCH)]
    assert send(batch, calls).status_code == 200
    too_many = send(batch, [*calls, ("extra", "GET", "/gmail/v1/users/me/profile")])
    assert too_many.status_code == 400
    not_multipart = batch.post("/batch/gmail/v1", json={})
    assert not_multipart.status_code == 400


def test_inner_post_with_a_json_body(emulator: GoogleEmulator, batch: httpx.Client) -> None:
    message_id = emulator.load_corpus(ME, seed=5, count=1)[0].id
    body = json.dumps({"addLabelIds": ["STARRED"]})
    content = (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: <m>\r\n\r\n"
        f"POST /gmail/v1/users/me/messages/{message_id}/modify HTTP/1.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()
    response = batch.post(
        "/batch/gmail/v1",
        content=content,
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )
    [(_, status, _, answer)] = answers(response)
    assert status == 200
    assert "STARRED" in answer["labelIds"]
    assert "STARRED" in emulator.mailbox(ME).get(message_id).label_ids
