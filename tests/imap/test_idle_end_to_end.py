"""The issue's proof: a message delivered by LMTP reaches a GraphQL subscriber within 2 seconds,
through IDLE, with processes as in production.

SQLite: ``inbox-api serve`` (uvicorn, its embedded worker watching the account). PostgreSQL:
``inbox-api serve`` and a separate ``inbox-api worker`` (``python -m app.worker``) that watches
and syncs; the API process hears of the new mail over LISTEN/NOTIFY. The account is connected
through ``connectImap`` on the API (its password sealed by that process's vault), the client is
the Node ``graphql-ws`` package, and the poll interval is an hour: only IDLE can be this quick.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import sys
import time
from pathlib import Path

import httpx

from app.models import Account, SyncState
from app.settings import Settings
from app.types import Action, Provider
from emulators.corpus import make_message
from emulators.runner import free_port
from tests.factories import make_owner, make_token
from tests.imap.conftest import Mailbox
from tests.imap.test_connect_imap import CONNECT, server_input
from tests.subscriptions.conftest import NodeSubscriber
from tests.subscriptions.test_across_processes import (
    environment,
    open_subscriptions,
    processes,
    ready,
    until,
)
from tests.sync.harness import park_other_accounts

DELIVERY_DEADLINE_SECONDS = 2.0  # the promise
QUERY = "subscription { messageEvents { kind messageId } }"


async def test_lmtp_delivery_reaches_a_subscriber_within_two_seconds_through_idle(
    db: Settings, mailbox: Mailbox, tmp_path: Path
) -> None:
    made = await make_owner()
    token = await make_token(made.owner, actions={Action.ACCOUNTS_MANAGE, Action.MESSAGES_METADATA})
    await park_other_accounts()  # other tests' accounts stay out of these workers
    env = environment(db, tmp_path)
    key = base64.b64encode(os.urandom(32)).decode()
    env.update(
        # A key id of its own: the password sealed here must not meet another test's key ring
        # under the same id (a server refuses to start on a key that opens none of its rows).
        INBOX_API_VAULT_KEYS=f"imap-idle-{secrets.token_hex(4)}:{key}",
        INBOX_API_SYNC_INTERVAL_SECONDS="3600",
        INBOX_API_IMAP_CA_FILE=str(mailbox.server.tls.ca_path),
        INBOX_API_IMAP_CONNECT_TIMEOUT_SECONDS="5",
    )
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    commands = [[sys.executable, "-m", "app.cli", "serve", "--port", str(port)]]
    if db.is_postgres:
        commands.append([sys.executable, "-m", "app.worker"])
    async with processes(*commands, env=env):
        await until(lambda: ready(api), "the API", 60)
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{api}/graphql",
                json={"query": CONNECT, "variables": {"input": server_input(mailbox)}},
                headers={"authorization": f"Bearer {token}"},
            )
        assert response.json()["data"]["connectImap"]["__typename"] == "ImapConnected"
        account = await Account.get(owner_id=made.owner.id, provider=Provider.IMAP)

        async def synced_and_idling() -> bool:
            state = await SyncState.get_or_none(account_id=account.id)
            if state is None or state.last_success_at is None:
                return False
            # Between runs the only connection left is the watch's own.
            return await asyncio.to_thread(mailbox.server.connections, mailbox.user) == 1

        await until(synced_and_idling, "the first sync and the IDLE watch", 60)
        async with await NodeSubscriber.start(
            api.replace("http", "ws") + "/graphql", token, QUERY
        ) as client:
            await client.wait_for("connected")

            async def listening() -> bool:
                return await open_subscriptions(api) >= 1

            await until(listening, "the subscription")
            raw = make_message(random.Random(12))
            await asyncio.to_thread(mailbox.server.deliver, mailbox.user, raw)
            delivered = time.monotonic()
            event = (await client.wait_for("next", within=30))["payload"]["data"]
            elapsed = time.monotonic() - delivered
    assert event["messageEvents"]["kind"] == "MESSAGE_ADDED"
    assert elapsed < DELIVERY_DEADLINE_SECONDS, elapsed
