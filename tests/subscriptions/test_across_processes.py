"""New mail crosses processes: Gmail emulator -> worker -> PostgreSQL -> another API process.

Five processes, as in production: the Gmail emulator (``python -m emulators.gmail_emulator``),
one sync worker (``cross_process_worker``: ``app.worker.run_worker``, NOTIFY on commit), two
API processes (``inbox-api serve`` on the test database) and the Node ``graphql-ws`` client.
The client subscribes on one API process and gets a message delivered into the mailbox; then
it disconnects, 20 more arrive, and it resumes on the other API process with its last cursor:
exactly those 20, in order.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.models import Message, SyncState
from app.settings import Settings
from app.types import Action
from emulators.runner import free_port
from resolvers.ids import encode_id
from tests.factories import make_account, make_owner, make_token
from tests.subscriptions.conftest import NodeSubscriber
from tests.sync.harness import emulator_process, park_other_accounts

pytestmark = pytest.mark.postgres_only

ROOT = Path(__file__).resolve().parents[2]
USER = "cross-process@example.com"
QUERY = "subscription($after: String) { messageEvents(after: $after) { kind messageId cursor } }"


def environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_API_")}
    key = base64.b64encode(os.urandom(32)).decode()
    env.update(
        INBOX_API_DATABASE_URL=settings.effective_database_url,
        INBOX_API_DATA_DIR=str(data_dir),
        INBOX_API_VAULT_KEYS=f"cross-process-test:{key}",  # an id no other test seals under
        INBOX_API_SYNC_INTERVAL_SECONDS="1",
        INBOX_API_WORKER_LEASE_SECONDS="5",
        INBOX_API_LOG_LEVEL="warning",
    )
    return env


@asynccontextmanager
async def processes(*commands: list[str], env: dict[str, str]) -> AsyncIterator[None]:
    started = [
        await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT) for command in commands
    ]
    try:
        yield
    finally:
        for process in started:
            if process.returncode is None:
                process.terminate()
        for process in started:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def until(check: Any, what: str, seconds: float = 30) -> None:
    """Polls: the other processes change the database and answer HTTP, nothing signals here."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


async def ready(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{base_url}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def open_subscriptions(base_url: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("inbox_api_open_subscriptions "):
            return float(line.split()[1])
    return 0.0


async def deliver(gmail_base: str, count: int, seed: int) -> list[str]:
    async with httpx.AsyncClient(base_url=f"{gmail_base}/_emulator/users/{USER}") as control:
        response = await control.post("/corpus", json={"seed": seed, "count": count})
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids


async def global_ids(provider_ids: list[str]) -> list[str]:
    for _ in range(300):
        rows = await Message.filter(provider_id__in=provider_ids).order_by("id")
        if len(rows) == len(provider_ids):
            return [encode_id("Message", row.id) for row in rows]
        await asyncio.sleep(0.1)
    raise AssertionError("the worker never stored the delivered mail")


async def test_mail_reaches_a_subscriber_of_another_process_and_resumes_on_a_third(
    db: Settings, tmp_path: Path
) -> None:
    made = await make_owner()
    token = await make_token(made.owner, actions={Action.MESSAGES_METADATA})
    with emulator_process(USER, messages=5, seed=3) as gmail_base:
        account = await make_account(made.owner, address=USER)
        await park_other_accounts(account.id)
        await SyncState.filter(account_id=account.id).update(next_run_at=None)
        ports = [free_port(), free_port()]
        api = [f"http://127.0.0.1:{port}" for port in ports]
        serve = [[sys.executable, "-m", "app.cli", "serve", "--port", str(p)] for p in ports]
        worker = [
            sys.executable,
            "-m",
            "tests.subscriptions.cross_process_worker",
            f"--gmail-base={gmail_base}",
        ]
        async with processes(*serve, worker, env=environment(db, tmp_path)):

            async def synced() -> bool:
                state = await SyncState.get(account_id=account.id)
                return state.last_success_at is not None

            await until(synced, "the initial sync", 60)
            for base_url in api:
                await until(lambda base_url=base_url: ready(base_url), f"{base_url} ready")

            first_url, second_url = (url.replace("http", "ws") + "/graphql" for url in api)
            async with await NodeSubscriber.start(first_url, token, QUERY) as client:
                await client.wait_for("connected")

                async def listening() -> bool:
                    return await open_subscriptions(api[0]) >= 1

                await until(listening, "the subscription")
                first = await deliver(gmail_base, 1, seed=101)
                event = (await client.wait_for("next", within=30))["payload"]["data"]
            assert event["messageEvents"]["kind"] == "MESSAGE_ADDED"
            assert event["messageEvents"]["messageId"] == (await global_ids(first))[0]
            cursor = event["messageEvents"]["cursor"]

            later = await deliver(gmail_base, 20, seed=202)
            expected = await global_ids(later)  # stored by the worker while nobody listens
            async with await NodeSubscriber.start(
                second_url, token, QUERY, {"after": cursor}
            ) as client:
                events = [
                    (await client.wait_for("next", within=30))["payload"]["data"]["messageEvents"]
                    for _ in later
                ]
                await asyncio.sleep(1)
                extra = [r for r in client.records if r["event"] in ("next", "error")][20:]
    assert [e["kind"] for e in events] == ["MESSAGE_ADDED"] * 20
    assert [e["messageId"] for e in events] == expected
    assert extra == []
