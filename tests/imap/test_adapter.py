"""The IMAP adapter against a real Dovecot: full sync, changes, identity, content, failures.

Batches are applied to ``Replica``, a dict with apply's documented semantics (upserts, flag
updates of known messages only, deletions, then folder resyncs); tests/imap/test_sync.py runs
the same adapter through the real engine and ``sync.apply`` on the database.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.types import FolderRole
from emulators.corpus import make_mailbox, make_message
from emulators.runner import free_port
from sync.providers.errors import AuthRevoked, PermanentError, TransientError
from sync.providers.imap import MAX_RESETS_PER_WINDOW, ImapAdapter, ImapEndpoint, Security
from sync.providers.imap_connection import ImapConnection, check_login
from sync.providers.imap_fetch import Fetched
from sync.providers.records import ChangeBatch, MessageRecord
from tests.imap.conftest import Mailbox, adapter_for, server_truth
from vault import Secret

SYNCED = ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash")


@dataclass
class Replica:
    """What the cache would hold after applying the batches, keyed by provider id."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, FolderRole] = field(default_factory=dict)

    def apply(self, batch: ChangeBatch) -> None:
        if batch.folders is not None:
            self.folders = {folder.provider_id: folder.role for folder in batch.folders}
        for record in batch.upserts:
            self.messages[record.provider_id] = _state(record)
        upserted = {record.provider_id for record in batch.upserts}
        for flags in batch.flag_updates:
            if flags.provider_id in self.messages and flags.provider_id not in upserted:
                self.messages[flags.provider_id].update(
                    label_ids=list(flags.label_ids), unread=flags.unread, starred=flags.starred
                )
        for gone in batch.deletions:
            self.messages.pop(gone, None)
        for resync in batch.folder_resyncs:
            for pid, message in list(self.messages.items()):
                folder = resync.folder_provider_id
                if folder in message["label_ids"] and pid not in resync.provider_ids:
                    del self.messages[pid]


def _state(record: MessageRecord) -> dict[str, Any]:
    return {
        "label_ids": list(record.label_ids),
        "unread": record.unread,
        "starred": record.starred,
        "message_id_header": record.message_id_header,
    }


async def full_sync(
    mailbox: Mailbox, replica: Replica, *, fresh_adapter_per_page: bool = False, **options: Any
) -> tuple[str, int]:
    """Run a full sync into ``replica``; (cursor, pages)."""
    adapter = adapter_for(mailbox, **options)
    token: str | None = None
    pages = 0
    try:
        while True:
            batch = await adapter.full_sync_page(token, with_content=True)
            pages += 1
            replica.apply(batch)
            if batch.next_page_token is None:
                assert batch.cursor is not None
                assert batch.complete
                return batch.cursor, pages
            assert batch.cursor is None
            assert not batch.complete
            token = batch.next_page_token
            if fresh_adapter_per_page:  # a worker killed between pages resumes from the token
                await adapter.aclose()
                adapter = adapter_for(mailbox, **options)
    finally:
        await adapter.aclose()


async def catch_up(adapter: ImapAdapter, cursor: str, replica: Replica) -> tuple[str, int]:
    """``changes_since`` until complete; (cursor, batches)."""
    batches = 0
    while True:
        batch = await adapter.changes_since(cursor, with_content=False)
        batches += 1
        replica.apply(batch)
        assert batch.cursor is not None
        cursor = batch.cursor
        if batch.complete:
            return cursor, batches


def fill(mailbox: Mailbox, seed: int = 1) -> None:
    corpus = make_mailbox(seed, 40)
    with mailbox.server.client(mailbox.user) as other:
        other.append_many("INBOX", corpus[:25])
        other.append_many("Archive", corpus[25:32])
        other.append_many("Sent", corpus[32:36])
        other.append("Drafts", corpus[36], ["\\Draft", "\\Seen"])
        for uid in (2, 5, 7):
            other.store("INBOX", uid, "+FLAGS", ["\\Seen"])
        other.store("INBOX", 3, "+FLAGS", ["\\Flagged"])


async def test_full_sync_pages_equal_the_server_and_mark_nothing_seen(mailbox: Mailbox) -> None:
    fill(mailbox)
    before = server_truth(mailbox, SYNCED)
    replica = Replica()

    cursor, pages = await full_sync(mailbox, replica, page_size=7, fresh_adapter_per_page=True)

    assert replica.messages == before
    assert server_truth(mailbox, SYNCED) == before  # BODY.PEEK: nothing became \Seen
    assert pages == 6  # 37 messages, 7 per page, pages spanning folders
    assert replica.folders == {
        "INBOX": FolderRole.INBOX,
        "Archive": FolderRole.ARCHIVE,
        "Drafts": FolderRole.DRAFTS,
        "Junk": FolderRole.SPAM,
        "Sent": FolderRole.SENT,
        "Trash": FolderRole.TRASH,
    }
    state = json.loads(cursor)
    assert state["kind"] == "cursor"
    inbox = next(folder for folder in state["folders"] if folder["name"] == "INBOX")
    assert (inbox["uid"], inbox["count"]) == (25, 25)
    assert inbox["validity"] > 0
    assert inbox["modseq"] > 0


async def test_a_folder_renumbered_during_the_full_sync_is_fetched_again(
    mailbox: Mailbox,
) -> None:
    fill(mailbox)
    replica = Replica()
    adapter = adapter_for(mailbox, page_size=28)
    try:
        first = await adapter.full_sync_page(None, with_content=False)
        replica.apply(first)
        assert sum(m["label_ids"] == ["Archive"] for m in replica.messages.values()) == 3
        with mailbox.server.client(mailbox.user) as other:
            other.recreate_with_same_messages("Archive")
        token = first.next_page_token
        while token is not None:
            batch = await adapter.full_sync_page(token, with_content=False)
            replica.apply(batch)
            token = batch.next_page_token
    finally:
        await adapter.aclose()
    assert replica.messages == server_truth(mailbox, SYNCED)


async def test_records_carry_envelope_threads_bodies_and_attachments(mailbox: Mailbox) -> None:
    rng_seed = 5
    corpus = make_mailbox(rng_seed, 12, reply_ratio=0.6)
    with mailbox.server.client(mailbox.user) as other:
        other.append_many("INBOX", corpus)
    adapter = adapter_for(mailbox)
    try:
        batch = await adapter.full_sync_page(None, with_content=True)
        records = {record.provider_id: record for record in batch.upserts}
        by_message_id = {record.message_id_header: record for record in records.values()}
        replies = [record for record in records.values() if record.references]
        assert replies
        for reply in replies:
            root = reply.references[0]
            assert reply.thread_provider_id == root
            if root in by_message_id:
                assert by_message_id[root].thread_provider_id == root
        mixed = [record for record in records.values() if record.attachments]
        assert mixed
        assert all(record.attachments_known for record in records.values())
        attachment = mixed[0].attachments[0]
        data = await adapter.fetch_attachment(mixed[0].provider_id, attachment)
        assert len(data) == attachment.size
        record = next(iter(records.values()))
        assert record.content is not None
        assert record.content.raw_mime is not None
        assert record.subject
        assert record.from_addresses
        assert record.snippet
        content = await adapter.fetch_content(record.provider_id)
        assert content.raw_mime == record.content.raw_mime
        assert content.text_body == record.content.text_body

        headers_only = await adapter.full_sync_page(None, with_content=False)
        light = {record.provider_id: record for record in headers_only.upserts}
        assert light.keys() == records.keys()
        for pid, record in light.items():
            assert record.content is None
            assert not record.attachments_known
            assert record.parse_error is None
            assert (record.subject, record.thread_provider_id) == (
                records[pid].subject,
                records[pid].thread_provider_id,
            )
    finally:
        await adapter.aclose()


async def test_parsing_in_an_executor_gives_the_same_records(mailbox: Mailbox) -> None:
    fill(mailbox)
    inline = adapter_for(mailbox)
    with ThreadPoolExecutor(max_workers=2) as executor:
        pooled = adapter_for(mailbox, executor=executor)
        try:
            expected = await inline.full_sync_page(None, with_content=True)
            got = await pooled.full_sync_page(None, with_content=True)
        finally:
            await inline.aclose()
            await pooled.aclose()
    assert got.upserts == expected.upserts
    assert all(record.content and record.content.raw_mime for record in got.upserts)
    # What a process pool would send both ways survives pickling.
    assert pickle.loads(pickle.dumps(got.upserts)) == got.upserts  # noqa: S301 (our own bytes)
    fetched = Fetched(uid=1, flags=frozenset({"\\Seen"}), internal_date=None, size=3, raw=b"x")
    assert pickle.loads(pickle.dumps(fetched)) == fetched  # noqa: S301 (our own bytes)


@pytest.mark.parametrize(
    "disabled",
    [(), ("QRESYNC",), ("QRESYNC", "CONDSTORE"), ("QRESYNC", "CONDSTORE", "ESEARCH")],
    ids=["qresync", "condstore", "flags-only", "no-esearch"],
)
async def test_changes_by_another_client_reach_the_replica(
    mailbox: Mailbox, disabled: tuple[str, ...]
) -> None:
    fill(mailbox)
    replica = Replica()
    cursor, _ = await full_sync(mailbox, replica, disabled_extensions=disabled)
    adapter = adapter_for(mailbox, disabled_extensions=disabled, page_size=3)
    try:
        quiet = await adapter.changes_since(cursor, with_content=False)
        assert (quiet.upserts, quiet.deletions, quiet.folders) == ([], [], None)
        if "CONDSTORE" in disabled:  # nothing says what changed: every flag, unchanged
            before = len(replica.messages)
            replica.apply(quiet)
            assert len(quiet.flag_updates) == before == len(replica.messages)
        else:
            assert quiet.flag_updates == []
        with mailbox.server.client(mailbox.user) as other:
            other.store("INBOX", 1, "+FLAGS", ["\\Seen", "\\Flagged"])
            other.store("INBOX", 2, "-FLAGS", ["\\Seen"])
            other.move("INBOX", 4, "Archive")
            other.expunge("INBOX", 6)
            other.copy("Sent", 1, "Archive")
            for raw in make_mailbox(9, 5):
                other.append("INBOX", raw)
            other.expunge("Archive", 1)
        cursor, batches = await catch_up(adapter, cursor, replica)
        assert batches >= 2  # 7 new messages, 3 per batch
        assert replica.messages == server_truth(mailbox, SYNCED)
        assert replica.folders["Archive"] == FolderRole.ARCHIVE
    finally:
        await adapter.aclose()


async def test_a_move_is_one_batch_and_never_a_duplicate(mailbox: Mailbox) -> None:
    fill(mailbox)
    replica = Replica()
    cursor, _ = await full_sync(mailbox, replica)
    inbox_4 = f"{_validity(cursor, 'INBOX')}:4:INBOX"
    moved = replica.messages[inbox_4]["message_id_header"]
    with mailbox.server.client(mailbox.user) as other:
        other.move("INBOX", 4, "Archive")
    adapter = adapter_for(mailbox)
    try:
        batch = await adapter.changes_since(cursor, with_content=False)
    finally:
        await adapter.aclose()
    assert [r.message_id_header for r in batch.upserts] == [moved]
    assert batch.upserts[0].label_ids == ("Archive",)
    assert batch.deletions == [inbox_4]
    replica.apply(batch)
    headers = [m["message_id_header"] for m in replica.messages.values()]
    assert headers.count(moved) == 1


async def test_uidvalidity_reset_relists_without_duplicates_and_is_capped(
    mailbox: Mailbox,
) -> None:
    fill(mailbox)
    replica = Replica()
    cursor, _ = await full_sync(mailbox, replica)
    adapter = adapter_for(mailbox)
    try:
        for reset in range(1, MAX_RESETS_PER_WINDOW + 2):
            with mailbox.server.client(mailbox.user) as other:
                other.recreate_with_same_messages("Archive")
            batch = await adapter.changes_since(cursor, with_content=False)
            replica.apply(batch)
            cursor = batch.cursor or cursor
            archive = next(f for f in json.loads(cursor)["folders"] if f["name"] == "Archive")
            if reset <= MAX_RESETS_PER_WINDOW:
                assert [r.folder_provider_id for r in batch.folder_resyncs] == ["Archive"]
                assert len(batch.upserts) == 7
                assert replica.messages == server_truth(mailbox, SYNCED)
                assert archive["frozen_until"] == 0
            else:  # a server that renumbers all the time no longer costs a full download
                assert (batch.upserts, batch.folder_resyncs) == ([], [])
                assert archive["frozen_until"] > time.time() + 3600
            in_archive = [m for m in replica.messages.values() if m["label_ids"] == ["Archive"]]
            headers = [m["message_id_header"] for m in in_archive]
            assert len(headers) == len(set(headers)) == 7
    finally:
        await adapter.aclose()


async def test_folders_created_and_deleted_by_another_client(mailbox: Mailbox) -> None:
    fill(mailbox)
    with mailbox.server.client(mailbox.user) as other:
        other.create("Old")
        other.append_many("Old", make_mailbox(4, 3))
    replica = Replica()
    cursor, _ = await full_sync(mailbox, replica)
    assert sum(m["label_ids"] == ["Old"] for m in replica.messages.values()) == 3
    with mailbox.server.client(mailbox.user) as other:
        other.create("Projects")
        other.create("Projects/Z&APw-rich")  # "Zürich" in modified UTF-7, as clients send it
        other.append("Projects/Z&APw-rich", make_message(random.Random(3)))
        other.move("INBOX", 1, "Projects")
        other.delete("Old")
    adapter = adapter_for(mailbox)
    try:
        cursor, _ = await catch_up(adapter, cursor, replica)
        folders = {f.provider_id: f for f in await adapter.list_folders()}
    finally:
        await adapter.aclose()
    assert "Old" not in replica.folders
    assert {"Projects", "Projects/Z&APw-rich"} <= replica.folders.keys()
    zurich = folders["Projects/Z&APw-rich"]
    assert (zurich.name, zurich.parent_provider_id, zurich.total_count) == ("Zürich", "Projects", 1)
    assert replica.messages == server_truth(mailbox, (*SYNCED, "Projects", "Projects/Z&APw-rich"))


async def test_content_of_a_gone_message_is_not_found(mailbox: Mailbox) -> None:
    fill(mailbox)
    adapter = adapter_for(mailbox)
    try:
        batch = await adapter.full_sync_page(None, with_content=False)
        first = next(r for r in batch.upserts if r.label_ids == ("INBOX",))
        with mailbox.server.client(mailbox.user) as other:
            other.expunge("INBOX", int(first.provider_id.split(":")[1]))
        with pytest.raises(PermanentError) as gone:
            await adapter.fetch_content(first.provider_id)
        assert gone.value.code == "NOT_FOUND"
        stale = first.provider_id.replace(first.provider_id.split(":")[0], "1", 1)
        with pytest.raises(PermanentError, match="renumbered"):
            await adapter.fetch_content(stale)
    finally:
        await adapter.aclose()


async def test_a_wrong_password_is_refused_once_and_never_retried(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = 0
    real_open = ImapConnection.open.__func__  # type: ignore[attr-defined]

    async def counting_open(cls: type[ImapConnection], *args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return await real_open(cls, *args, **kwargs)

    monkeypatch.setattr(ImapConnection, "open", classmethod(counting_open))
    adapter = adapter_for(mailbox, password="not-the-password")
    started = time.monotonic()
    with pytest.raises(AuthRevoked) as refused:
        await adapter.full_sync_page(None, with_content=True)
    assert refused.value.code == "LOGIN"
    assert time.monotonic() - started < 2.0
    assert "not-the-password" not in str(refused.value)
    for _ in range(3):
        with pytest.raises(AuthRevoked):
            await adapter.list_folders()
    assert opened == 1  # no retry storm that could lock the account at the provider
    await adapter.aclose()


@pytest.mark.parametrize(
    ("how", "code", "kind"),
    [
        ("closed port", "CONNECT", TransientError),
        ("unknown host", "DNS", TransientError),
        ("TLS to a plaintext port", "TLS", PermanentError),
        ("untrusted certificate", "TLS", PermanentError),
    ],
)
async def test_connection_failures_name_their_stage(
    mailbox: Mailbox, how: str, code: str, kind: type[Exception]
) -> None:
    server = mailbox.server
    endpoint = mailbox.endpoint()
    context: ssl.SSLContext | None = server.ssl_context()
    if how == "closed port":
        endpoint = ImapEndpoint(server.host, _closed_port(), Security.TLS, mailbox.user)
    elif how == "unknown host":
        endpoint = ImapEndpoint("imap.nonexistent.invalid", 993, Security.TLS, mailbox.user)
    elif how == "TLS to a plaintext port":
        endpoint = ImapEndpoint(server.host, server.imap_port, Security.TLS, mailbox.user)
    else:
        context = None  # the system's CAs do not know the test CA
    with pytest.raises(kind) as failed:
        await check_login(endpoint, Secret(mailbox.password), ssl_context=context, io_timeout=5)
    assert getattr(failed.value, "code", None) == code


async def test_starttls_and_plaintext_loopback_log_in(mailbox: Mailbox) -> None:
    for security in (Security.STARTTLS, Security.PLAIN):
        capabilities = await check_login(
            mailbox.endpoint(security),
            Secret(mailbox.password),
            ssl_context=mailbox.server.ssl_context(),
        )
        assert {"IMAP4REV1", "IDLE", "CONDSTORE"} <= capabilities


async def test_connections_per_account_are_capped(mailbox: Mailbox) -> None:
    fill(mailbox)
    adapter = adapter_for(mailbox, max_connections=2)
    idle = asyncio.Event()
    watcher = asyncio.create_task(adapter.watch(_nothing, on_idle=idle.set))
    try:
        await asyncio.wait_for(idle.wait(), 5)
        batch = await adapter.full_sync_page(None, with_content=False)
        peak = 0

        async def fetch(record: MessageRecord) -> None:
            nonlocal peak
            await adapter.fetch_content(record.provider_id)
            peak = max(peak, mailbox.server.connections(mailbox.user))

        await asyncio.gather(*(fetch(record) for record in batch.upserts[:6]))
        assert peak == 2  # the IDLE connection and one for commands, however many callers
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await adapter.aclose()


async def _nothing() -> None:
    return None


def _validity(cursor: str, folder: str) -> int:
    return int(next(f for f in json.loads(cursor)["folders"] if f["name"] == folder)["validity"])


def _closed_port() -> int:
    return free_port()
