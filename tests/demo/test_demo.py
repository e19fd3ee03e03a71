"""`inbox-api demo` as a newcomer meets it: a real process from a clean environment.

The demo starts in an empty folder with no ``INBOX_API_*`` variable, prints the GraphiQL URL
and the owner token; the token reads the mail that the embedded worker synced from both
emulated providers, a real graphql-transport-ws client (gql) receives the mail that keeps
arriving, and SIGTERM ends it all with status 0 and its temporary folder removed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from emulators.runner import free_port

INBOX_API = Path(sys.executable).with_name("inbox-api")
MESSAGES = 40  # per mailbox: enough for threads and attachments, quick to sync
NEW_MAIL = """subscription NewMail {
  messageEvents { kind message { subject account { provider } } }
}"""


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read_until(self, pattern: str, within: float) -> re.Match[str]:
        """The first printed line matching ``pattern``, waiting up to ``within`` seconds."""
        async with asyncio.timeout(within):
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                if self.process.returncode is not None:
                    pytest.fail("the demo ended early:\n" + "\n".join(self.lines))
                await asyncio.sleep(0.05)

    async def follow(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_API_")}
    env["TMPDIR"] = str(tmp_path)  # where its temporary data folder goes (and must go away)
    process = await asyncio.create_subprocess_exec(
        str(INBOX_API),
        "demo",
        "--port",
        str(free_port()),
        "--messages",
        str(MESSAGES),
        "--new-mail-every",
        "1",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    running = Demo(process)
    running.reader = asyncio.create_task(running.follow())
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await running.reader


async def test_the_demo_serves_synced_mail_and_live_events_then_stops_cleanly(
    demo: Demo, tmp_path: Path
) -> None:
    url = (await demo.read_until(r"GraphiQL:\s+(\S+)", within=45))[1]
    token = (await demo.read_until(r"Owner token:\s+(\S+)", within=5))[1]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/graphql")
    headers = {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(trust_env=False) as client:
        page = await client.get(url)
        assert page.status_code == 200
        assert "graphiql-container" in page.text
        answer = await client.post(
            url,
            headers=headers,
            json={
                "query": "{ accounts { provider address sync { lastSuccessAt } } "
                "messages(first: 100) { totalCount nodes { subject hasAttachments "
                "account { provider } } } }"
            },
        )
    data = answer.json()["data"]
    assert sorted(a["provider"] for a in data["accounts"]) == ["GMAIL", "GRAPH"]
    assert all(a["sync"]["lastSuccessAt"] for a in data["accounts"])
    assert data["messages"]["totalCount"] >= 2 * MESSAGES
    nodes = data["messages"]["nodes"]
    assert {n["account"]["provider"] for n in nodes} == {"GMAIL", "GRAPH"}
    assert any(n["hasAttachments"] for n in nodes)
    assert any(not n["subject"].isascii() for n in nodes)

    transport = WebsocketsTransport(
        url=url.replace("http://", "ws://"),
        init_payload=headers,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        events = session.subscribe(GraphQLRequest(NEW_MAIL))
        event = (await asyncio.wait_for(anext(events), 15))["messageEvents"]
        await events.aclose()
    assert event["kind"] == "MESSAGE_ADDED"
    assert event["message"]["account"]["provider"] == "GMAIL"
    subject = event["message"]["subject"]
    await demo.read_until(re.escape(f": {subject}") + "$", within=5)  # the demo delivered it

    demo.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(demo.process.wait(), 30) == 0
    assert demo.reader is not None
    await demo.reader
    output = "\n".join(demo.lines)
    assert output.count(token) == 1, "the token is printed once"
    assert "Inbox API demo stopped." in output
    assert "Traceback" not in output
    assert not any(name.startswith("inbox-api-demo-") for name in os.listdir(tmp_path)), (
        "its temporary folder is removed"
    )
