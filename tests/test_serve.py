"""`inbox-api serve` as a user meets it: a real process, real HTTP, GraphiQL in Chromium.

Each test starts the server on a fresh SQLite data directory (nothing else installed), so these
tests run the same on both backends' passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from emulators.runner import free_port
from tests.support.browser import load_page

CLI = [sys.executable, "-m", "app.cli"]


@dataclass
class Served:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    startup_seconds: float


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_API_")}
    env["INBOX_API_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    env = _env(tmp_path / "data")
    started = time.monotonic()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = started + 30
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0].decode()
            pytest.fail(f"server did not become ready:\n{output}")
        time.sleep(0.05)
    served = Served(base_url, env, process, time.monotonic() - started)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _owner_token(env: dict[str, str]) -> str:
    output = subprocess.run(
        [*CLI, "owners", "create", "--name", "Ada Lovelace", "--email", "ada@example.com"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return output.rsplit("(shown once): ", 1)[1].strip()


def test_serve_answers_queries_and_shuts_down_gracefully(served: Served) -> None:
    assert served.startup_seconds < 30
    token = _owner_token(served.env)
    response = httpx.post(
        f"{served.base_url}/graphql",
        json={"query": "{ viewer { name email } }"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.json() == {
        "data": {"viewer": {"name": "Ada Lovelace", "email": "ada@example.com"}}
    }
    assert httpx.get(f"{served.base_url}/healthz").json() == {"status": "ok"}

    served.process.send_signal(signal.SIGTERM)
    # uvicorn finishes its shutdown, then re-raises SIGTERM so the exit status tells the truth.
    assert served.process.wait(timeout=15) in (0, -signal.SIGTERM)
    output = served.process.stdout.read().decode() if served.process.stdout else ""
    assert "Application shutdown complete" in output
    assert token not in output
    assert "Traceback" not in output


@pytest.mark.browser
def test_graphiql_renders_offline_from_the_server(served: Served) -> None:
    page = load_page(f"{served.base_url}/graphql")
    assert "graphiql-container" in page.dom
    assert "Loading..." not in page.dom
    hosts = {request.url.split("/")[2] for request in page.page_requests()}
    assert hosts == {served.base_url.removeprefix("http://")}


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    for _ in range(2):
        result = subprocess.run([*CLI, "migrate"], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


def test_every_command_has_help() -> None:
    for command in (
        ["--help"],
        ["serve", "--help"],
        ["owners", "create", "--help"],
        ["tokens", "create", "--help"],
        ["migrate", "--help"],
        ["schema", "--help"],
    ):
        result = subprocess.run([*CLI, *command], capture_output=True, text=True)
        assert result.returncode == 0
        assert "usage: inbox-api" in result.stdout
