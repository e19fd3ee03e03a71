"""Graph throttling over https: MailboxConcurrency, Retry-After, injected faults, the budget."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from emulators.graph_testing import EmulatedMailbox, ManualClock, ServedEmulator

clock = ManualClock()


def requests_to(served: ServedEmulator, mailbox: EmulatedMailbox) -> list[dict[str, Any]]:
    return [r for r in served.emulator.stats()["requests"] if r["mailbox"] == mailbox.oid]


def test_a_fifth_concurrent_request_gets_429_with_retry_after(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    start = threading.Barrier(5)

    def call(_: int) -> httpx.Response:
        start.wait()
        return graph.get("me/mailFolders/inbox")

    served.emulator.set_latency(0.4)
    try:
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(call, range(5)))
    finally:
        served.emulator.set_latency(0)

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 429]
    [refused] = [a for a in answers if a.status_code == 429]
    assert int(refused.headers["Retry-After"]) >= 1
    assert "MailboxConcurrency" in refused.json()["error"]["message"]
    assert served.emulator.stats()["maxConcurrent"][mailbox.oid] == 4


def test_an_injected_429_is_over_once_retry_after_has_elapsed(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    served.emulator.inject_fault(429, retry_after=30, user_ref=mailbox.oid)

    throttled = graph.get("me/mailFolders/inbox")
    clock.advance(30)
    retried = graph.get("me/mailFolders/inbox")

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "30")
    assert retried.status_code == 200
    log = requests_to(served, mailbox)
    assert [r["status"] for r in log] == [429, 200]
    assert not any(r["early"] for r in log)
    assert log[1]["at"] - log[0]["at"] >= 30


def test_a_client_that_ignores_retry_after_is_refused_and_logged_as_early(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    served.emulator.inject_fault(429, retry_after=30, user_ref=mailbox.oid)
    graph.get("me/mailFolders/inbox")
    clock.advance(10)

    impatient = graph.get("me/mailFolders/inbox")

    assert (impatient.status_code, impatient.headers["Retry-After"]) == (429, "20")
    assert [r["early"] for r in requests_to(served, mailbox)] == [False, True]
    assert served.emulator.stats()["earlyRequests"] >= 1
    served.emulator.reset_stats()
    assert served.emulator.stats()["earlyRequests"] == 0


def test_an_injected_503_passes_after_count_requests(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    served.emulator.inject_fault(503, count=2, user_ref=mailbox.oid)
    statuses = [graph.get("me/mailFolders/inbox").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_faults_hit_only_their_mailbox(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    bystander = served.new_mailbox()
    served.emulator.inject_fault(429, retry_after=5, user_ref=mailbox.oid)
    with served.graph_client(bystander.token) as other:
        assert other.get("me/mailFolders/inbox").status_code == 200
    assert graph.get("me/mailFolders/inbox").status_code == 429


def test_the_request_budget_refills_after_its_window(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    throttle = served.emulator.throttle
    budget = throttle.request_budget
    throttle.request_budget = 3
    try:
        statuses = [graph.get("me/mailFolders/inbox").status_code for _ in range(4)]
        retry_after = int(graph.get("me/mailFolders/inbox").headers["Retry-After"])
        clock.advance(throttle.budget_window)
        fresh = served.token_for(mailbox.oid)
        later = graph.get("me/mailFolders/inbox", headers={"Authorization": f"Bearer {fresh}"})
    finally:
        throttle.request_budget = budget

    assert statuses == [200, 200, 200, 429]
    assert 0 < retry_after <= throttle.budget_window
    assert later.status_code == 200
