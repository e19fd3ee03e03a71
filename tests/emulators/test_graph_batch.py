"""Graph JSON batching over https: answers matched by id, each inner request with its own
status, throttled and counted like a direct call, and refusals of malformed batches."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from emulators.graph_testing import EmulatedMailbox, ManualClock, ServedEmulator

clock = ManualClock()


def batch(graph: httpx.Client, urls: list[str]) -> dict[str, dict[str, Any]]:
    requests = [{"id": str(n), "method": "GET", "url": url} for n, url in enumerate(urls)]
    answer = graph.post("$batch", json={"requests": requests})
    assert answer.status_code == 200
    return {inner["id"]: inner for inner in answer.json()["responses"]}


def test_each_inner_request_has_its_own_status_matched_by_id(graph: httpx.Client) -> None:
    answers = batch(graph, ["/me/mailFolders/inbox", "/me/messages/no-such-message", "/me"])

    assert {k: a["status"] for k, a in answers.items()} == {"0": 200, "1": 404, "2": 200}
    assert answers["0"]["body"]["displayName"] == "Inbox"
    assert answers["1"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert answers["2"]["body"]["mail"]


def test_an_inner_429_carries_its_retry_after(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    served.emulator.inject_fault(429, retry_after=17, user_ref=mailbox.oid)

    throttled = batch(graph, ["/me/mailFolders/inbox"])["0"]
    clock.advance(17)
    retried = batch(graph, ["/me/mailFolders/inbox"])["0"]

    assert (throttled["status"], throttled["headers"]["retry-after"]) == (429, "17")
    assert throttled["body"]["error"]["code"]
    assert retried["status"] == 200


def test_inner_requests_count_against_the_mailbox_concurrency(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    served.emulator.set_latency(0.1)
    try:
        answers = batch(graph, ["/me/mailFolders/inbox"] * 20)
    finally:
        served.emulator.set_latency(0)

    assert [a["status"] for a in answers.values()] == [200] * 20
    log = [r for r in served.emulator.stats()["requests"] if r["mailbox"] == mailbox.oid]
    assert len(log) == 20  # every inner request is one request to the mailbox
    assert served.emulator.stats()["maxConcurrent"][mailbox.oid] == 4


def test_a_batch_with_a_bad_token_is_refused_whole(served: ServedEmulator) -> None:
    with served.graph_client("not-a-token") as stranger:
        answer = stranger.post(
            "$batch", json={"requests": [{"id": "1", "method": "GET", "url": "/me"}]}
        )

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"requests": [{"id": str(n), "method": "GET", "url": "/me"} for n in range(21)]}, "20"),
        ({"requests": [{"id": "1", "method": "GET", "url": "/me"}] * 2}, "unique"),
        ({"requests": [{"id": "1", "url": "/me"}]}, "method"),
        ({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["0"]}]}, "depends"),
        ({"requests": []}, "format"),
        ([], "format"),
    ],
)
def test_malformed_batches_are_refused_with_400(
    graph: httpx.Client, payload: Any, message: str
) -> None:
    answer = graph.post("$batch", json=payload)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"
    assert message in answer.json()["error"]["message"]
