"""The `/_emulator` control routes: everything a test in another process needs, over HTTP."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulators.graph_mime import Recipient, build_mime
from emulators.graph_testing import ManualClock, ServedEmulator, serve_for_tests

clock = ManualClock()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_for_tests(tmp_path_factory.mktemp("control-tls"), clock=clock) as served:
        yield served


@pytest.fixture
def control(served: ServedEmulator) -> Iterator[httpx.Client]:
    with served.control_client() as client:
        yield client


def new_user(control: httpx.Client, address: str) -> tuple[str, str]:
    """(oid, access token) of a user created over HTTP, for an app registered over HTTP."""
    control.post(
        "/_emulator/apps",
        json={
            "clientId": "other-app",
            "clientSecret": "s",
            "redirectUris": ["http://localhost/cb"],
        },
    ).raise_for_status()
    user = control.post("/_emulator/users", json={"address": address, "displayName": "Dee"})
    token = control.post("/_emulator/tokens", json={"user": address, "clientId": "other-app"})
    return user.json()["oid"], token.json()["accessToken"]


def test_users_mail_and_folders_can_be_driven_over_http(
    served: ServedEmulator, control: httpx.Client
) -> None:
    oid, token = new_user(control, "dee@contoso.test")
    raw = build_mime(
        subject="From MIME", sender=Recipient("Al", "al@example.com"), text="raw bytes"
    )
    by_mime = control.post(
        "/_emulator/users/dee@contoso.test/messages",
        json={"mime": base64.b64encode(raw).decode(), "isRead": True},
    ).json()
    by_fields = control.post(
        f"/_emulator/users/{oid}/messages",
        json={"subject": "From fields", "from": "Bo <bo@example.com>", "text": "hi"},
    ).json()
    folder = control.post(f"/_emulator/users/{oid}/folders", json={"displayName": "Work"}).json()
    control.patch(
        f"/_emulator/users/{oid}/folders/{folder['id']}", json={"displayName": "Office"}
    ).raise_for_status()
    moved = control.post(
        f"/_emulator/users/{oid}/messages/{by_fields['id']}/move", json={"folder": folder["id"]}
    ).json()
    control.patch(
        f"/_emulator/users/{oid}/messages/{moved['immutableId']}",
        json={"flagStatus": "flagged", "categories": ["Green"]},
    ).raise_for_status()
    assert control.delete(f"/_emulator/users/{oid}/messages/{by_mime['id']}").status_code == 204

    folders = control.get(f"/_emulator/users/{oid}/folders").json()["value"]
    assert "Office" in {f["displayName"] for f in folders}
    assert moved["immutableId"] == by_fields["immutableId"] != moved["id"]
    with served.graph_client(token) as graph:
        [message] = graph.get(f"me/mailFolders/{folder['id']}/messages").json()["value"]
        assert (message["subject"], message["flag"]["flagStatus"]) == ("From fields", "flagged")
        assert message["categories"] == ["Green"]
        assert graph.get("me/mailFolders/inbox/messages").json()["value"] == []


def test_faults_stats_and_dead_tokens_over_http(
    served: ServedEmulator, control: httpx.Client
) -> None:
    oid, token = new_user(control, "eve@contoso.test")
    with served.graph_client(token) as graph:
        delta_link = graph.get("me/mailFolders/inbox/messages/delta").json()["@odata.deltaLink"]
        control.post(
            "/_emulator/faults", json={"status": 429, "retryAfter": 1, "user": oid}
        ).raise_for_status()
        control.put("/_emulator/latency", json={"seconds": 0}).raise_for_status()
        throttled = graph.get("me/mailFolders/inbox")
        clock.advance(1)
        control.post(
            f"/_emulator/users/{oid}/expire-delta-tokens", json={"folder": "inbox"}
        ).raise_for_status()
        dead = graph.get(delta_link)
        control.post(f"/_emulator/users/{oid}/expire-access-tokens").raise_for_status()
        expired = graph.get("me/mailFolders/inbox")
    stats = control.get("/_emulator/stats").json()

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "1")
    assert dead.status_code == 410
    assert expired.status_code == 401
    assert [r["status"] for r in stats["requests"] if r["mailbox"] == oid] == [200, 429, 410]
    assert control.delete("/_emulator/stats").status_code == 204
    assert control.get("/_emulator/stats").json()["requests"] == []


def test_unknown_users_are_404(control: httpx.Client) -> None:
    answer = control.post("/_emulator/users/nobody@contoso.test/messages", json={"subject": "x"})
    assert answer.status_code == 404


def test_the_emulator_runs_as_its_own_process(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph_emulator", "--tls-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        context = ssl.create_default_context(cafile=announced["ca_path"])
        with httpx.Client(base_url=announced["base_url"], verify=context, trust_env=False) as http:
            deadline = time.monotonic() + 10
            while True:
                try:
                    user = http.post("/_emulator/users", json={"address": "far@contoso.test"})
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            config = http.get(f"/{announced['tenant_id']}/v2.0/.well-known/openid-configuration")
        assert user.status_code == 200
        assert config.json()["token_endpoint"].startswith(announced["base_url"])
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
