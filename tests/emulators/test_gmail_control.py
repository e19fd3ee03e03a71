"""emulators.gmail_control: driving the emulator over HTTP, as another process would."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL
from emulators.runner import free_port, serve_in_thread

ME = "dora@example.com"
TLS = ssl.create_default_context()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, str]]:
    emulator = GoogleEmulator(seed=6)
    with serve_in_thread(emulator.app) as server:
        yield emulator, server.base_url


@pytest.fixture
def http(served: tuple[GoogleEmulator, str]) -> Iterator[httpx.Client]:
    served[0].reset()
    with httpx.Client(base_url=served[1], verify=TLS) as client:
        yield client


def control(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = http.request(method, f"/_emulator{path}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def set_up(http: httpx.Client) -> httpx.Client:
    """A client, a user and a Gmail API client with that user's token, all made over HTTP."""
    control(http, "POST", "/clients", {"client_id": "c", "client_secret": "s", "redirect_uris": []})
    control(http, "POST", "/users", {"email": ME})
    tokens = control(
        http, "POST", "/tokens", {"email": ME, "client_id": "c", "scopes": [SCOPE_FULL]}
    )
    assert tokens["refresh_token"]
    return httpx.Client(
        base_url=http.base_url.join("/gmail/v1/users/me"),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        verify=TLS,
    )


def raw_message(subject: str) -> str:
    raw = f"From: x@example.org\r\nTo: {ME}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()
    return base64.urlsafe_b64encode(raw).decode()


def test_deliver_modify_trash_delete_and_expire_over_http(http: httpx.Client) -> None:
    with set_up(http) as api:
        start = api.get("/profile").json()["historyId"]
        user = f"/users/{ME}"
        delivered = control(http, "POST", f"{user}/messages", {"raw": raw_message("one")})
        assert delivered["labelIds"] == ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]
        starred = control(
            http, "POST", f"{user}/messages", {"raw": raw_message("two"), "labelIds": ["STARRED"]}
        )
        assert starred["labelIds"] == ["STARRED"]
        modified = control(
            http,
            "POST",
            f"{user}/messages/{delivered['id']}/modify",
            {"removeLabelIds": ["UNREAD"]},
        )
        assert "UNREAD" not in modified["labelIds"]
        assert (
            "TRASH" in control(http, "POST", f"{user}/messages/{starred['id']}/trash")["labelIds"]
        )
        control(http, "DELETE", f"{user}/messages/{delivered['id']}")
        kinds = [
            list(r)[2]
            for r in api.get("/history", params={"startHistoryId": start}).json()["history"]
        ]
        assert kinds == [
            "messagesAdded",
            "messagesAdded",
            "labelsRemoved",
            "labelsAdded",
            "messagesDeleted",
        ]
        assert control(http, "GET", user)["messagesTotal"] == 1
        control(http, "POST", f"{user}/history/expire", {})
        assert api.get("/history", params={"startHistoryId": start}).status_code == 404
        corpus = control(http, "POST", f"{user}/corpus", {"seed": 1, "count": 5})
        assert len(corpus["ids"]) == 5


def test_faults_limits_and_stats_over_http(http: httpx.Client) -> None:
    with set_up(http) as api:
        control(http, "POST", "/faults", {"kind": "503", "times": 2, "retryAfter": 3})
        assert api.get("/profile").status_code == 503
        control(http, "DELETE", "/faults")
        assert api.get("/profile").status_code == 200
        limits = control(http, "PUT", "/limits", {"unitsPerMinute": 2})
        assert limits == {"unitsPerMinute": 2, "maxConcurrentRequests": None}
        assert api.get("/profile").status_code == 200
        assert api.get("/profile").status_code == 403
        stats = control(http, "GET", "/stats")
        assert stats["requests"] == {"getProfile": 4}
        assert stats["statuses"]["getProfile"] == {"200": 2, "403": 1, "503": 1}
        assert stats["units"] == {ME: 2}
        assert stats["quota"] == {"unitsPerMinute": 2, "used": {ME: 2}}
        assert stats["faults_served"] == 1
        control(http, "DELETE", "/stats")
        assert control(http, "GET", "/stats")["total_requests"] == 0


def test_token_expiry_and_revocation_over_http(http: httpx.Client) -> None:
    with set_up(http) as api:
        control(http, "POST", "/tokens/expire", {"email": ME})
        assert api.get("/profile").status_code == 401
    with set_up(http) as api:
        assert control(http, "POST", f"/users/{ME}/revoke", {})["revoked"] == 1
        assert api.get("/profile").status_code == 401


def test_bad_control_requests_answer_in_gmail_error_shape(http: httpx.Client) -> None:
    missing_field = http.post("/_emulator/users", json={})
    assert missing_field.status_code == 400
    assert missing_field.json()["error"]["code"] == 400
    assert http.post("/_emulator/users", content=b"{nope").status_code == 400
    unknown = http.delete(f"/_emulator/users/{ME}/messages/0123456789abcdef")
    assert unknown.status_code == 404
    bad_kind = http.post("/_emulator/faults", json={"kind": "418"})
    assert bad_kind.status_code == 400


def test_command_line_serves_an_emulator_another_process_can_drive() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "emulators.gmail_emulator",
        f"--port={port}",
        f"--user={ME}",
        "--messages=20",
        "--client=cli-client:cli-secret:http://127.0.0.1/cb",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            urls = json.loads(process.stdout.readline())
            assert urls["token_uri"] == f"http://127.0.0.1:{port}/token"
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    profile = httpx.get(f"{base}/_emulator/users/{ME}", verify=TLS)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert profile.json()["messagesTotal"] == 20
        finally:
            process.terminate()
