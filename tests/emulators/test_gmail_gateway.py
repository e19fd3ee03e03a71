"""emulators.gmail_gateway over real HTTP: quota, injected faults and the concurrency cap."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from emulators.gmail_clock import ManualClock
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_faults import FaultKind
from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import serve_in_thread

ME = "alice@example.com"
TLS = ssl.create_default_context()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, ManualClock, str]]:
    clock = ManualClock(1_700_000_000.0)
    emulator = GoogleEmulator(seed=1, clock=clock, units_per_minute=100)
    with serve_in_thread(emulator.app) as server:
        yield emulator, clock, server.base_url


@pytest.fixture
def emulator(served: tuple[GoogleEmulator, ManualClock, str]) -> GoogleEmulator:
    served[0].reset()
    served[0].register_client("c", "s", ["http://127.0.0.1/cb"])
    served[0].add_user(ME)
    return served[0]


@pytest.fixture
def clock(served: tuple[GoogleEmulator, ManualClock, str]) -> ManualClock:
    return served[1]


@pytest.fixture
def api(
    emulator: GoogleEmulator, served: tuple[GoogleEmulator, ManualClock, str]
) -> Iterator[httpx.Client]:
    token = emulator.identity.issue_tokens(ME, "c", [SCOPE_FULL]).access_token
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{served[2]}/gmail/v1/users/me"
    with httpx.Client(base_url=url, headers=headers, verify=TLS) as client:
        yield client


def test_quota_exhaustion_answers_403_user_rate_limit_until_the_window_moves(
    emulator: GoogleEmulator, clock: ManualClock, api: httpx.Client
) -> None:
    message_id = emulator.load_corpus(ME, seed=1, count=1)[0].id
    for _ in range(20):  # 20 x messages.get (5 units) = the 100 units of this emulator
        assert api.get(f"/messages/{message_id}").status_code == 200
    refused = api.get(f"/messages/{message_id}")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == 403
    assert error["status"] == "PERMISSION_DENIED"
    assert error["errors"][0]["reason"] == "userRateLimitExceeded"
    assert error["errors"][0]["domain"] == "usageLimits"
    assert error["message"].startswith("User-rate limit exceeded.  Retry after 2023-11-14T22:14:")
    assert api.get("/profile").status_code == 403  # even a 1-unit call
    assert emulator.quota.usage() == {ME: 100}  # refused calls cost nothing
    clock.advance(30)
    assert api.get("/profile").status_code == 403  # the window slides, it does not reset
    clock.advance(31)
    assert api.get(f"/messages/{message_id}").status_code == 200
    snapshot = emulator.snapshot()
    assert snapshot["units"] == {ME: 105}
    assert snapshot["statuses"]["messages.get"] == {"200": 21, "403": 1}


def test_methods_cost_their_documented_units(emulator: GoogleEmulator, api: httpx.Client) -> None:
    emulator.quota.units_per_minute = 15_000
    api.get("/profile")
    api.get("/messages")
    api.get("/history", params={"startHistoryId": emulator.mailbox(ME).history_id})
    api.post("/messages/batchModify", json={"ids": [], "addLabelIds": ["STARRED"]})
    raw = "VG86IGJAZXhhbXBsZS5vcmcNClN1YmplY3Q6IHgNCg0KeA"
    api.post("/messages/send", json={"raw": raw})
    assert emulator.quota.usage() == {ME: 1 + 5 + 2 + 50 + 100}


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        (FaultKind.TOO_MANY_REQUESTS, 429, "rateLimitExceeded"),
        (FaultKind.RATE_LIMIT, 403, "rateLimitExceeded"),
        (FaultKind.USER_RATE_LIMIT, 403, "userRateLimitExceeded"),
        (FaultKind.BACKEND_ERROR, 500, "backendError"),
        (FaultKind.UNAVAILABLE, 503, "backendError"),
    ],
)
def test_injected_faults_hit_the_next_calls_then_stop(
    emulator: GoogleEmulator, api: httpx.Client, kind: FaultKind, status: int, reason: str
) -> None:
    emulator.faults.inject(kind, times=2)
    for _ in range(2):
        response = api.get("/profile")
        assert response.status_code == status
        assert response.json()["error"]["errors"][0]["reason"] == reason
        assert "retry-after" not in response.headers
    assert api.get("/profile").status_code == 200
    assert emulator.snapshot()["faults_served"] == 2


def test_faults_can_target_one_method_and_carry_retry_after(
    emulator: GoogleEmulator, api: httpx.Client
) -> None:
    emulator.faults.inject("503", method="messages.list", retry_after=7)
    assert api.get("/profile").status_code == 200
    response = api.get("/messages")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert api.get("/messages").status_code == 200


def test_latency_fault_delays_a_successful_call(
    emulator: GoogleEmulator, api: httpx.Client
) -> None:
    emulator.faults.inject("latency", delay=0.3)
    started = time.monotonic()
    assert api.get("/profile").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get("/profile")
    assert time.monotonic() - started < 0.3


def test_concurrency_cap_answers_429_too_many_concurrent_requests(
    emulator: GoogleEmulator, api: httpx.Client
) -> None:
    emulator.gateway.max_concurrent_requests = 1
    emulator.faults.inject("latency", delay=0.5, method="messages.list")
    slow = threading.Thread(target=api.get, args=("/messages",))
    slow.start()
    time.sleep(0.2)  # the slow call holds the only slot now
    crowded = api.get("/profile")
    slow.join()
    assert crowded.status_code == 429
    error = crowded.json()["error"]
    assert error["message"] == "Too many concurrent requests for user."
    assert error["errors"][0]["reason"] == "rateLimitExceeded"
    assert api.get("/profile").status_code == 200
