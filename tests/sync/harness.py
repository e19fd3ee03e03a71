"""Helpers the sync tests share: the cache as plain values, and the emulated Gmail as the truth.

``cache_snapshot(account_id)`` reads every cache table of one account into dicts keyed by
provider ids (cache ids differ between runs; provider ids do not), so tests compare a whole
cache with ``==``. ``mailbox_truth(mailbox)`` is what the emulated mailbox holds, in the same
shape, for the properties sync must preserve (membership, labels, flags, threads).

``served_gmail()`` serves a ``GoogleEmulator`` over real HTTP; ``EmulatedGmail`` gives each test
its own user and an ``AdapterFactory`` that builds a real ``GmailAdapter`` for an account whose
address is that user, with a token source that refreshes at the emulated token endpoint (and
raises ``AuthRevoked`` on ``invalid_grant``), as the production token source does.

Across processes (the worker-kill test, ``scripts/bench_sync.py``): ``emulator_process()`` runs
``python -m emulators.gmail_emulator`` on its own, ``remote_mailbox_truth()`` reads a user's
mailbox through the Gmail API, and ``python -m tests.sync.harness worker --gmail-base URL`` is a
sync worker (``app.worker.run_worker``) whose adapters point at that emulator, configured by
``INBOX_API_*`` variables like the real one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from app.models import (
    Account,
    Attachment,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    SyncState,
    Thread,
)
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL
from emulators.gmail_store import Mailbox
from emulators.runner import free_port, serve_in_thread
from sync.providers.errors import AuthRevoked, TransientError
from sync.providers.gmail import GmailAdapter
from sync.providers.gmail_batch import MAX_CALLS, decode_batch, encode_batch, new_boundary

CLIENT_ID = "inbox-api-tests"
CLIENT_SECRET = "client-secret"
_users = itertools.count(1)


async def park_other_accounts(*mine: int) -> None:
    """Other tests' accounts (one database serves the whole run) must not be picked up by a
    worker this test runs: only ``mine`` stay due."""
    from sync.jobs import ensure_sync_states

    await ensure_sync_states()
    await SyncState.exclude(account_id__in=mine).update(
        next_run_at=datetime(2100, 1, 1, tzinfo=UTC)
    )


@dataclass(frozen=True)
class CacheSnapshot:
    messages: dict[str, dict[str, Any]]
    threads: dict[str, dict[str, Any]]
    folders: dict[str, dict[str, Any]]


async def cache_snapshot(account_id: int) -> CacheSnapshot:
    folders = {
        row["provider_id"]: row
        for row in await Folder.filter(account_id=account_id).values(
            "id", "provider_id", "name", "role", "parent_provider_id"
        )
    }
    folder_by_id = {row["id"]: pid for pid, row in folders.items()}
    threads = {
        row["id"]: row
        for row in await Thread.filter(account_id=account_id).values(
            "id",
            "provider_id",
            "subject",
            "snippet",
            "participants",
            "last_message_at",
            "message_count",
            "unread_count",
        )
    }
    rows = await Message.filter(account_id=account_id).values(
        "id",
        "provider_id",
        "thread_id",
        "subject",
        "date",
        "snippet",
        "from_addresses",
        "to_addresses",
        "unread",
        "starred",
        "draft",
        "label_ids",
        "has_attachments",
        "message_id_header",
    )
    ids = [row["id"] for row in rows]
    labels: dict[int, list[str]] = {message_id: [] for message_id in ids}
    for message_id, folder_id in await MessageLabel.filter(message_id__in=ids).values_list(
        "message_id", "folder_id"
    ):
        labels[message_id].append(folder_by_id[folder_id])
    attachments: dict[int, list[tuple[Any, ...]]] = {message_id: [] for message_id in ids}
    for row in (
        await Attachment.filter(message_id__in=ids)
        .order_by("id")
        .values("message_id", "filename", "content_type", "size", "part_id")
    ):
        attachments[row["message_id"]].append(
            (row["filename"], row["content_type"], row["size"], row["part_id"])
        )
    bodies = {
        row["message_id"]: (row["text_body"], row["html_body"])
        for row in await MessageBody.filter(message_id__in=ids).values(
            "message_id", "text_body", "html_body"
        )
    }
    messages = {}
    for row in rows:
        message_id = row.pop("id")
        thread = threads.get(row.pop("thread_id"))
        messages[row["provider_id"]] = {
            **row,
            "thread": None if thread is None else thread["provider_id"],
            "labels": sorted(labels[message_id]),
            "attachments": attachments[message_id],
            "body": bodies.get(message_id),
        }
    for row in folders.values():
        row.pop("id")
    by_provider_id = {}
    for row in threads.values():
        row.pop("id")
        by_provider_id[row["provider_id"]] = row
    return CacheSnapshot(messages, by_provider_id, folders)


def mailbox_truth(mailbox: Mailbox) -> dict[str, dict[str, Any]]:
    """Every message of an emulated mailbox (spam and trash included): thread, labels, flags."""
    listed = []
    page_token = None
    while True:
        page = mailbox.list_messages(
            include_spam_trash=True, page_token=page_token, max_results=500
        )
        listed.extend(page.items)
        page_token = page.next_page_token
        if page_token is None:
            break
    return {
        message.id: {
            "thread": message.thread_id,
            "label_ids": sorted(message.label_ids),
            "unread": "UNREAD" in message.label_ids,
            "starred": "STARRED" in message.label_ids,
        }
        for message in listed
    }


def cache_truth(snapshot: CacheSnapshot) -> dict[str, dict[str, Any]]:
    """The cache in ``mailbox_truth``'s shape."""
    return {
        pid: {
            "thread": message["thread"],
            "label_ids": sorted(message["label_ids"]),
            "unread": message["unread"],
            "starred": message["starred"],
        }
        for pid, message in snapshot.messages.items()
    }


def thread_counts(snapshot: CacheSnapshot) -> dict[str, tuple[int, int]]:
    """(message_count, unread_count) per thread, as stored and as the messages say."""
    counted: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    for message in snapshot.messages.values():
        counted[message["thread"]] += 1
        unread[message["thread"]] += int(message["unread"])
    return {thread: (counted[thread], unread[thread]) for thread in counted}


class GmailTokens:
    """A ``TokenSource`` for one emulated user: refreshes at the token endpoint when forced."""

    def __init__(self, token_uri: str, access_token: str, refresh_token: str) -> None:
        self._token_uri = token_uri
        self._access_token = access_token
        self._refresh_token = refresh_token
        self.refreshes = 0

    async def __call__(self, force_refresh: bool) -> str:
        if force_refresh:
            self.refreshes += 1
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }
            async with httpx.AsyncClient() as client:
                response = await client.post(self._token_uri, data=form)
            if response.status_code == 400 and response.json().get("error") == "invalid_grant":
                raise AuthRevoked("invalid_grant")
            if response.status_code != 200:
                raise TransientError(f"token endpoint: HTTP {response.status_code}")
            self._access_token = response.json()["access_token"]
        return self._access_token


@dataclass
class EmulatedGmail:
    """One served emulator; users, token sources and adapters for the tests."""

    emulator: GoogleEmulator
    base_url: str
    tokens: dict[str, GmailTokens] = field(default_factory=dict)
    adapters_built: int = 0

    def new_user(self, *, messages: int = 0, seed: int = 0) -> Mailbox:
        """A fresh user with ``messages`` corpus messages and tokens for the test client."""
        email = f"user{next(_users)}@example.com"
        mailbox = self.emulator.add_user(email)
        if messages:
            self.emulator.load_corpus(email, seed=seed, count=messages)
        issued = self.emulator.identity.issue_tokens(email, CLIENT_ID, [SCOPE_FULL])
        assert issued.refresh_token is not None
        token_uri = self.emulator.urls(self.base_url).token_uri
        self.tokens[email] = GmailTokens(token_uri, issued.access_token, issued.refresh_token)
        return mailbox

    async def adapter_factory(self, account: Account) -> GmailAdapter:
        """The ``AdapterFactory`` of the tests: a real Gmail adapter over HTTP."""
        self.adapters_built += 1
        return GmailAdapter(self.base_url, self.tokens[account.address])

    def units(self, email: str) -> int:
        """Quota units charged to ``email`` so far: every call costs at least one."""
        units: dict[str, int] = self.emulator.stats.snapshot()["units"]
        return units.get(email, 0)


@contextmanager
def served_gmail() -> Iterator[EmulatedGmail]:
    # The quota is tested with injected faults; a real minute's quota would only slow tests.
    emulator = GoogleEmulator(seed=7, units_per_minute=10**9)
    emulator.register_client(CLIENT_ID, CLIENT_SECRET, ["http://127.0.0.1/callback"])
    with serve_in_thread(emulator.app) as server:
        yield EmulatedGmail(emulator, server.base_url)


@contextmanager
def emulator_process(user: str, *, messages: int, seed: int = 0) -> Iterator[str]:
    """The Gmail emulator in its own process with ``messages`` corpus messages for ``user``;
    yields its base URL once it answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "emulators.gmail_emulator",
        f"--port={port}",
        f"--user={user}",
        f"--messages={messages}",
        f"--seed={seed}",
        f"--client={CLIENT_ID}:{CLIENT_SECRET}:http://127.0.0.1/callback",
        f"--units-per-minute={10**9}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        json.loads(process.stdout.readline())  # printed once the corpus is loaded
        base_url = f"http://127.0.0.1:{port}"
        wait_until_serving(lambda: httpx.get(base_url + "/_emulator/stats").raise_for_status())
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def wait_until_serving(probe: Callable[[], object], *, seconds: float = 30) -> None:
    """Call ``probe`` (a request to a server starting in another process) until it connects."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def emulator_token(base_url: str, user: str) -> str:
    """A fresh access token for ``user`` from an emulator in another process."""
    response = httpx.post(
        base_url + "/_emulator/tokens",
        json={"email": user, "client_id": CLIENT_ID, "scopes": [SCOPE_FULL]},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


class RemoteTokens:
    """A ``TokenSource`` over an emulator in another process (its test control issues tokens)."""

    def __init__(self, base_url: str, user: str) -> None:
        self._base_url = base_url
        self._user = user
        self._token: str | None = None

    async def __call__(self, force_refresh: bool) -> str:
        if force_refresh or self._token is None:
            self._token = await asyncio.to_thread(emulator_token, self._base_url, self._user)
        return self._token


async def remote_mailbox_truth(base_url: str, user: str) -> dict[str, dict[str, Any]]:
    """``mailbox_truth`` of a user of an emulator in another process, through the Gmail API
    (ids from ``messages.list``, labels from ``format=minimal`` gets, 50 per batch request)."""
    headers = {"Authorization": f"Bearer {emulator_token(base_url, user)}"}
    api = "/gmail/v1/users/me/messages"
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        ids: list[str] = []
        params: dict[str, Any] = {"maxResults": 500, "includeSpamTrash": "true"}
        while True:
            listing = (await client.get(api, params=params)).json()
            ids.extend(entry["id"] for entry in listing.get("messages", ()))
            if not listing.get("nextPageToken"):
                break
            params["pageToken"] = listing["nextPageToken"]

        async def minimal(chunk: Sequence[str]) -> list[dict[str, Any]]:
            boundary = new_boundary()
            response = await client.post(
                "/batch/gmail/v1",
                content=encode_batch([f"{api}/{i}?format=minimal" for i in chunk], boundary),
                headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            )
            answers = decode_batch(response.headers["content-type"], response.content)
            assert sorted(answers) == list(range(len(chunk))), "a batch call went missing"
            return [answers[index].json() for index in range(len(chunk))]

        chunks = [ids[start : start + MAX_CALLS] for start in range(0, len(ids), MAX_CALLS)]
        messages = [m for batch in await asyncio.gather(*map(minimal, chunks)) for m in batch]
    return {
        message["id"]: {
            "thread": message["threadId"],
            "label_ids": sorted(message.get("labelIds", [])),
            "unread": "UNREAD" in message.get("labelIds", []),
            "starred": "STARRED" in message.get("labelIds", []),
        }
        for message in messages
    }


def worker_command(gmail_base: str, *, page_size: int = 500) -> list[str]:
    """The command line of a test worker process (its settings come from the environment)."""
    return [
        sys.executable,
        "-m",
        "tests.sync.harness",
        "worker",
        f"--gmail-base={gmail_base}",
        f"--page-size={page_size}",
    ]


async def _run_test_worker(gmail_base: str, page_size: int) -> None:
    from app.db import close_database, open_database
    from app.settings import Settings
    from app.worker import run_worker, stop_on_signals

    settings = Settings()
    stop = asyncio.Event()
    stop_on_signals(stop)

    async def adapter_factory(account: Account) -> GmailAdapter:
        tokens = RemoteTokens(gmail_base, account.address)
        return GmailAdapter(gmail_base, tokens, page_size=page_size)

    await open_database(settings, apply_migrations=False)
    try:
        await run_worker(settings, adapter_factory, stop_event=stop)
    finally:
        await close_database()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A sync worker against an emulated Gmail.")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker")
    worker.add_argument("--gmail-base", required=True)
    worker.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("INBOX_API_LOG_LEVEL", "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    asyncio.run(_run_test_worker(args.gmail_base, args.page_size))


if __name__ == "__main__":
    main()
