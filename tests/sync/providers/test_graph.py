"""GraphAdapter against the Graph emulator over https: full sync, content, throttling, auth.

The helpers here (token source, adapter factory, an in-test cache that applies batches the way
sync.apply must, and the emulator's mailbox as records) are shared with test_graph_changes.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.types import FolderRole
from emulators.graph_mime import Attachment, Recipient, build_mime
from emulators.graph_store import MailMessage
from emulators.graph_testing import EmulatedMailbox, ManualClock, ServedEmulator, serve_for_tests
from sync.providers.adapter import TokenSource
from sync.providers.errors import AuthExpired, RateLimited, TransientError
from sync.providers.graph import GraphAdapter
from sync.providers.records import Address, ChangeBatch, FolderRecord, MessageRecord

clock = ManualClock()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_for_tests(tmp_path_factory.mktemp("graph-adapter-tls"), clock=clock) as served:
        yield served


@pytest.fixture
def mailbox(served: ServedEmulator) -> EmulatedMailbox:
    return served.new_mailbox()


class Tokens:
    """A TokenSource over the emulated identity platform that counts forced refreshes."""

    def __init__(self, served: ServedEmulator, mailbox: EmulatedMailbox) -> None:
        self._served = served
        self._oid = mailbox.oid
        self.current = mailbox.token
        self.refreshes = 0

    async def __call__(self, force_refresh: bool) -> str:
        if force_refresh:
            self.refreshes += 1
            self.current = self._served.token_for(self._oid)
        return self.current


@asynccontextmanager
async def graph_adapter(
    served: ServedEmulator,
    mailbox: EmulatedMailbox,
    *,
    tokens: TokenSource | None = None,
    http_timeout: float = 10.0,
    event_hooks: dict[str, list[Any]] | None = None,
    **options: Any,
) -> AsyncIterator[GraphAdapter]:
    async with httpx.AsyncClient(
        verify=served.tls.client_context(),
        trust_env=False,
        timeout=http_timeout,
        event_hooks=event_hooks,
    ) as http:
        adapter = GraphAdapter(
            served.running.base_url, tokens or Tokens(served, mailbox), http=http, **options
        )
        try:
            yield adapter
        finally:
            await adapter.aclose()


@dataclass
class Cache:
    """What sync.apply does with batches: upserts, then deletions, then folder resyncs, then
    (last page of a full sync) the sweep of every message the pass did not list."""

    messages: dict[str, MessageRecord] = field(default_factory=dict)
    folders: dict[str, FolderRecord] = field(default_factory=dict)
    listed_by_pass: set[str] | None = None
    """Ids a running full sync listed so far; None outside a full sync."""

    def apply(self, batch: ChangeBatch) -> set[str]:
        """Apply ``batch``; return the ids it deleted."""
        upserted = [record.provider_id for record in batch.upserts]
        assert len(upserted) == len(set(upserted)), "an id upserted twice in one batch"
        assert not set(upserted) & set(batch.deletions), "an id upserted and deleted"
        self.messages.update({record.provider_id: record for record in batch.upserts})
        deleted = {i for i in batch.deletions if self.messages.pop(i, None) is not None}
        for resync in batch.folder_resyncs:
            deleted |= self._delete(
                i
                for i, record in self.messages.items()
                if resync.folder_provider_id in record.label_ids and i not in resync.provider_ids
            )
        if self.listed_by_pass is not None:
            self.listed_by_pass.update(upserted)
            if batch.cursor is not None:
                deleted |= self._delete(i for i in self.messages if i not in self.listed_by_pass)
                self.listed_by_pass = None
        if batch.folders is not None:
            self.folders = {folder.provider_id: folder for folder in batch.folders}
        return deleted

    def _delete(self, message_ids: Iterable[str]) -> set[str]:
        doomed = set(message_ids)
        for message_id in doomed:
            del self.messages[message_id]
        return doomed


async def full_sync(
    adapter: GraphAdapter, cache: Cache, *, with_content: bool = False
) -> list[ChangeBatch]:
    """Every page of a full sync, applied; the last batch carries the cursor."""
    return await resume_full_sync(adapter, cache, None, with_content=with_content)


async def resume_full_sync(
    adapter: GraphAdapter, cache: Cache, page_token: str | None, *, with_content: bool = False
) -> list[ChangeBatch]:
    """The pages of a full sync from ``page_token`` on, applied."""
    if page_token is None:
        cache.listed_by_pass = set()
    batches = [await adapter.full_sync_page(page_token, with_content=with_content)]
    cache.apply(batches[0])
    while batches[-1].cursor is None:
        assert batches[-1].next_page_token is not None
        assert not batches[-1].complete
        token = batches[-1].next_page_token
        batches.append(await adapter.full_sync_page(token, with_content=with_content))
        cache.apply(batches[-1])
    assert batches[-1].next_page_token is None
    assert batches[-1].complete
    return batches


def _address(recipient: Recipient) -> Address:
    name = "" if recipient.name == recipient.address else recipient.name
    return Address(name=name, email=recipient.address)


def expected_messages(served: ServedEmulator, mailbox: EmulatedMailbox) -> dict[str, Any]:
    """The emulator's mailbox in the shape of `record_view`."""
    view: dict[str, Any] = {}
    for message in served.emulator.store.messages(mailbox.oid):
        content = message.content
        view[message.immutable_id] = (
            message.conversation_id,
            message.internet_message_id,
            content.subject,
            message.received_at.replace(microsecond=0),
            (message.folder_id, *(f"category:{c}" for c in message.categories)),
            not message.is_read,
            message.flag_status == "flagged",
            message.is_draft,
            tuple(_address(r) for r in ((content.sender,) if content.sender else ())),
            tuple(_address(r) for r in content.to),
            tuple(_address(r) for r in content.cc),
            tuple(_address(r) for r in content.bcc),
            tuple(_address(r) for r in content.reply_to),
        )
    return view


def record_view(cache: Cache) -> dict[str, Any]:
    return {
        record.provider_id: (
            record.thread_provider_id,
            record.message_id_header,
            record.subject,
            record.date,
            record.label_ids,
            record.unread,
            record.starred,
            record.draft,
            record.from_addresses,
            record.to_addresses,
            record.cc_addresses,
            record.bcc_addresses,
            record.reply_to_addresses,
        )
        for record in cache.messages.values()
    }


def expected_folders(served: ServedEmulator, mailbox: EmulatedMailbox) -> dict[str, Any]:
    root = served.emulator.folder(mailbox.oid, "msgfolderroot").id
    return {
        folder.id: (folder.display_name, None if folder.parent_id == root else folder.parent_id)
        for folder in served.emulator.folders(mailbox.oid)
    }


def folder_view(cache: Cache) -> dict[str, Any]:
    return {f.provider_id: (f.name, f.parent_provider_id) for f in cache.folders.values()}


def fill_mailbox(
    served: ServedEmulator, mailbox: EmulatedMailbox, rng: random.Random, count: int
) -> list[MailMessage]:
    """Messages of every shape over the well-known folders and a few custom ones."""
    emulator, oid = served.emulator, mailbox.oid
    projects = emulator.create_folder(oid, "Projects")
    folders = [
        "inbox",
        "inbox",
        "sentitems",
        "archive",
        "deleteditems",
        "junkemail",
        projects.id,
        emulator.create_folder(oid, "Alpha", projects.id).id,
        emulator.create_folder(oid, "Receipts", "inbox").id,
    ]
    delivered: list[MailMessage] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        parent = rng.choice(delivered) if delivered and rng.random() < 0.3 else None
        mime = build_mime(
            subject=f"Subject {n} ünïcode" if n % 7 == 0 else f"Subject {n}",
            sender=Recipient(rng.choice(["Ann Lee", ""]), f"sender{n % 5}@example.com"),
            to=[Recipient("Owner", mailbox.address)],
            cc=[Recipient("Cy", "cy@example.com")] if n % 3 == 0 else [],
            bcc=[Recipient("", "hidden@example.com")] if n % 11 == 0 else [],
            reply_to=[Recipient("Lists", "list@example.com")] if n % 13 == 0 else [],
            text=f"Body text {n}" if n % 2 else None,
            html=f"<p>Body <b>html</b> {n}</p>" if n % 2 == 0 else None,
            attachments=(
                [Attachment(f"file{n}.txt", "text/plain", f"content {n}".encode())]
                if n % 4 == 0
                else []
            ),
            in_reply_to=parent.internet_message_id if parent else None,
            date=start + timedelta(minutes=n),
        )
        delivered.append(
            emulator.deliver(
                oid,
                mime,
                folder=rng.choice(folders),
                received_at=start + timedelta(minutes=n),
                is_read=rng.random() < 0.5,
                flag_status=rng.choice(["notFlagged", "flagged", "complete"]),
                categories=rng.choice([(), ("Red",), ("Red", "Blue team")]),
            )
        )
    return delivered


# -- full sync ----------------------------------------------------------------------------------


async def test_full_sync_equals_the_mailbox(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    fill_mailbox(served, mailbox, random.Random(7), 60)
    cache = Cache()
    async with graph_adapter(served, mailbox, page_size=7) as adapter:
        batches = await full_sync(adapter, cache)

    assert len(batches) > 2
    assert batches[0].folders is not None
    assert all(batch.folders is None for batch in batches[1:])
    assert record_view(cache) == expected_messages(served, mailbox)
    assert folder_view(cache) == expected_folders(served, mailbox)
    assert all(record.content is None for record in cache.messages.values())
    assert not any(record.attachments_known for record in cache.messages.values())
    parents = {record.thread_provider_id for record in cache.messages.values()}
    assert len(parents) < len(cache.messages), "replies share their parent's conversation"


async def test_folders_carry_roles_parents_and_counts(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator = served.emulator
    nested = emulator.create_folder(mailbox.oid, "Receipts", "inbox")
    emulator.add_message(mailbox.oid, subject="unread")
    emulator.add_message(mailbox.oid, subject="read", is_read=True)

    async with graph_adapter(served, mailbox) as adapter:
        folders = {f.provider_id: f for f in await adapter.list_folders()}

    def folder_id(name: str) -> str:
        return emulator.folder(mailbox.oid, name).id

    roles = {f.role: f.provider_id for f in folders.values() if f.role is not FolderRole.CUSTOM}
    assert roles == {
        FolderRole.INBOX: folder_id("inbox"),
        FolderRole.SENT: folder_id("sentitems"),
        FolderRole.DRAFTS: folder_id("drafts"),
        FolderRole.TRASH: folder_id("deleteditems"),
        FolderRole.SPAM: folder_id("junkemail"),
        FolderRole.ARCHIVE: folder_id("archive"),
    }
    inbox = folders[folder_id("inbox")]
    assert (inbox.name, inbox.parent_provider_id) == ("Inbox", None)
    assert (inbox.total_count, inbox.unread_count) == (2, 1)
    assert folders[nested.id].parent_provider_id == inbox.provider_id
    assert folders[folder_id("outbox")].role is FolderRole.CUSTOM


async def test_a_full_sync_resumes_from_a_stored_page_token(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    fill_mailbox(served, mailbox, random.Random(3), 30)
    cache = Cache(listed_by_pass=set())
    async with graph_adapter(served, mailbox, page_size=4) as adapter:
        batch = await adapter.full_sync_page(None, with_content=False)
        cache.apply(batch)
        batch = await adapter.full_sync_page(batch.next_page_token, with_content=False)
        cache.apply(batch)
    assert batch.next_page_token is not None

    # A new worker, a new adapter: only the stored token carries over.
    async with graph_adapter(served, mailbox, page_size=4) as adapter:
        batches = await resume_full_sync(adapter, cache, batch.next_page_token)
    assert batches[-1].cursor is not None
    assert record_view(cache) == expected_messages(served, mailbox)


async def test_mail_moved_into_a_folder_already_listed_survives_the_end_of_pass_sweep(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator, oid = served.emulator, mailbox.oid
    for n in range(12):
        emulator.add_message(oid, subject=f"inbox {n}")
    later = emulator.create_folder(oid, "Listed last")
    wanderer = emulator.add_message(oid, folder=later.id, subject="moves during the pass")
    cache = Cache(listed_by_pass=set())
    async with graph_adapter(served, mailbox, page_size=5) as adapter:
        first = await adapter.full_sync_page(None, with_content=False)
        cache.apply(first)
        # Sent Items was listed (empty) by the first page, "Listed last" was not started yet.
        emulator.move_message(oid, wanderer.immutable_id, "sentitems")
        batches = await resume_full_sync(adapter, cache, first.next_page_token)

    sent = emulator.folder(oid, "sentitems").id
    last_page = {r.provider_id: r.label_ids for r in batches[-1].upserts}
    assert last_page[wanderer.immutable_id] == (sent,)
    assert cache.messages[wanderer.immutable_id].label_ids == (sent,)
    assert record_view(cache) == expected_messages(served, mailbox)


async def test_full_sync_with_content_carries_bodies_and_attachment_metadata(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    emulator = served.emulator
    logo = Attachment("logo.png", "image/png", b"\x89PNG fake", is_inline=True, content_id="logo1")
    report = Attachment("report.pdf", "application/pdf", b"%PDF-1.7 report")
    html = emulator.add_message(
        mailbox.oid,
        subject="With parts",
        html='<p>See <img src="cid:logo1"> and the report</p>',
        attachments=[logo, report],
    )
    text = emulator.add_message(mailbox.oid, subject="Plain", text="Just   text\nhere")
    inline_only = emulator.add_message(
        mailbox.oid, subject="Inline only", html='<img src="cid:logo1">', attachments=[logo]
    )
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        await full_sync(adapter, cache, with_content=True)
        with_parts = cache.messages[html.immutable_id]
        fetched_content = await adapter.fetch_content(html.immutable_id)
        fetched = {
            a.filename: await adapter.fetch_attachment(html.immutable_id, a)
            for a in with_parts.attachments
        }

    assert with_parts.content is not None
    assert with_parts.content.html_body == '<p>See <img src="cid:logo1"> and the report</p>'
    assert fetched_content == with_parts.content
    assert [(a.filename, a.content_type, a.size, a.inline) for a in with_parts.attachments] == [
        ("logo.png", "image/png", 9, True),
        ("report.pdf", "application/pdf", 15, False),
    ]
    assert with_parts.attachments[0].content_id == "logo1"
    assert fetched == {"logo.png": b"\x89PNG fake", "report.pdf": b"%PDF-1.7 report"}
    plain = cache.messages[text.immutable_id]
    assert plain.content is not None
    assert (plain.content.text_body, plain.content.html_body) == ("Just   text\nhere", None)
    assert (plain.snippet, plain.attachments, plain.attachments_known) == (
        "Just text here",
        (),
        True,
    )
    assert [a.filename for a in cache.messages[inline_only.immutable_id].attachments] == [
        "logo.png"
    ]


async def test_every_request_asks_for_immutable_ids_and_a_page_size(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    served.emulator.add_message(mailbox.oid, subject="one")
    seen: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        seen.append(request)

    async with graph_adapter(
        served, mailbox, page_size=25, event_hooks={"request": [remember]}
    ) as adapter:
        await full_sync(adapter, Cache(), with_content=True)

    assert seen
    assert {r.headers["Prefer"] for r in seen} == {'IdType="ImmutableId", odata.maxpagesize=25'}


# -- throttling, faults and auth ----------------------------------------------------------------


def requests_to(served: ServedEmulator, mailbox: EmulatedMailbox) -> list[dict[str, Any]]:
    return [r for r in served.emulator.stats()["requests"] if r["mailbox"] == mailbox.oid]


async def test_429_raises_rate_limited_with_the_retry_after_seconds(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    message = served.emulator.add_message(mailbox.oid, subject="throttled", text="later")
    served.emulator.inject_fault(429, count=1, retry_after=37, user_ref=mailbox.oid)
    async with graph_adapter(served, mailbox) as adapter:
        with pytest.raises(RateLimited) as raised:
            await adapter.fetch_content(message.immutable_id)
        clock.advance(37)  # the engine's wait, without sleeping
        content = await adapter.fetch_content(message.immutable_id)
    assert raised.value.retry_after == 37.0
    assert content.text_body == "later"
    assert [r["early"] for r in requests_to(served, mailbox)] == [False, False]


async def test_a_429_stops_every_request_of_the_call(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    fill_mailbox(served, mailbox, random.Random(5), 40)
    sent: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        sent.append(request)

    async with graph_adapter(
        served, mailbox, page_size=5, event_hooks={"request": [remember]}
    ) as adapter:
        batch = await adapter.full_sync_page(None, with_content=True)
        served.emulator.inject_fault(429, count=1, retry_after=5, user_ref=mailbox.oid)
        with pytest.raises(RateLimited) as raised:
            await adapter.full_sync_page(batch.next_page_token, with_content=True)
        sent_before = len(sent)
        await asyncio.sleep(0.1)
    assert raised.value.retry_after == 5.0
    assert len(sent) == sent_before, "nothing is sent once RateLimited is raised"
    clock.advance(5)


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_are_transient(
    served: ServedEmulator, mailbox: EmulatedMailbox, status: int
) -> None:
    served.emulator.inject_fault(status, count=1, user_ref=mailbox.oid)
    async with graph_adapter(served, mailbox) as adapter:
        with pytest.raises(TransientError):
            await adapter.list_folders()


async def test_a_timeout_is_transient(served: ServedEmulator, mailbox: EmulatedMailbox) -> None:
    served.emulator.set_latency(0.3)
    try:
        async with graph_adapter(served, mailbox, http_timeout=0.05) as adapter:
            with pytest.raises(TransientError):
                await adapter.list_folders()
    finally:
        served.emulator.set_latency(0)


async def test_an_expired_access_token_is_refreshed_once(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    served.emulator.add_message(mailbox.oid, subject="after refresh")
    tokens = Tokens(served, mailbox)
    served.emulator.expire_access_tokens(mailbox.oid)
    cache = Cache()
    async with graph_adapter(served, mailbox, tokens=tokens) as adapter:
        await full_sync(adapter, cache)
    assert tokens.refreshes == 1
    assert [r.subject for r in cache.messages.values()] == ["after refresh"]


async def test_a_token_rejected_after_refresh_raises_auth_expired(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    calls: list[bool] = []

    async def useless_tokens(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "not-a-token"

    async with graph_adapter(served, mailbox, tokens=useless_tokens) as adapter:
        with pytest.raises(AuthExpired):
            await adapter.list_folders()
    assert calls[0] is False
    assert calls.count(True) == 1, "requests rejected together share one refresh"


async def test_a_big_mailbox_never_sees_more_than_four_concurrent_requests(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    delivered = fill_mailbox(served, mailbox, random.Random(11), 200)
    served.emulator.set_latency(0.003)  # so that requests overlap on the server
    try:
        cache = Cache()
        async with graph_adapter(served, mailbox, page_size=20) as adapter:
            # Two callers share the adapter (and its limit): a sync and on-demand body fetches.
            await asyncio.gather(
                full_sync(adapter, cache, with_content=True),
                *(adapter.fetch_content(m.immutable_id) for m in delivered[:40]),
            )
    finally:
        served.emulator.set_latency(0)

    stats = served.emulator.stats()
    assert stats["maxConcurrent"][mailbox.oid] == 4
    requests = [r for r in stats["requests"] if r["mailbox"] == mailbox.oid]
    assert {r["status"] for r in requests} == {200}
    assert record_view(cache) == expected_messages(served, mailbox)


async def test_attachment_lists_come_twenty_to_a_json_batch(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    fill_mailbox(served, mailbox, random.Random(17), 170)  # 43 messages with an attachment
    sent: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        sent.append(request)

    cache = Cache()
    async with graph_adapter(
        served, mailbox, page_size=200, event_hooks={"request": [remember]}
    ) as adapter:
        await full_sync(adapter, cache, with_content=True)

    assert record_view(cache) == expected_messages(served, mailbox)
    assert sum(len(r.attachments) for r in cache.messages.values()) == 43
    assert not [r for r in sent if r.url.path.endswith("/attachments")]
    batches = [r for r in sent if r.url.path == "/v1.0/$batch"]
    assert len(batches) < 43 / 20 + len({r.label_ids for r in cache.messages.values()})
    listed = [r for r in requests_to(served, mailbox) if r["path"].endswith("/attachments")]
    assert len(listed) == 43


async def test_a_429_inside_a_batch_raises_rate_limited_with_its_retry_after(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    message = served.emulator.add_message(
        mailbox.oid,
        subject="with a file",
        text="see file",
        attachments=[Attachment("a.txt", "text/plain", b"a")],
    )

    async def throttle_the_batch(request: httpx.Request) -> None:
        if request.url.path == "/v1.0/$batch":
            served.emulator.inject_fault(429, count=1, retry_after=9, user_ref=mailbox.oid)

    async with graph_adapter(
        served, mailbox, event_hooks={"request": [throttle_the_batch]}
    ) as adapter:
        with pytest.raises(RateLimited) as raised:
            await full_sync(adapter, Cache(), with_content=True)
    clock.advance(9)  # the engine's wait, without sleeping
    cache = Cache()
    async with graph_adapter(served, mailbox) as adapter:
        await full_sync(adapter, cache, with_content=True)
    assert raised.value.retry_after == 9.0
    assert [a.filename for a in cache.messages[message.immutable_id].attachments] == ["a.txt"]


async def test_an_expired_token_is_refreshed_once_for_a_batch(
    served: ServedEmulator, mailbox: EmulatedMailbox
) -> None:
    message = served.emulator.add_message(
        mailbox.oid, subject="file", attachments=[Attachment("b.txt", "text/plain", b"b")]
    )
    tokens = Tokens(served, mailbox)
    expired: list[bool] = []

    async def expire_before_the_batch(request: httpx.Request) -> None:
        if request.url.path == "/v1.0/$batch" and not expired:
            expired.append(True)
            served.emulator.expire_access_tokens(mailbox.oid)  # the batch carries a dead token

    cache = Cache()
    async with graph_adapter(
        served, mailbox, tokens=tokens, event_hooks={"request": [expire_before_the_batch]}
    ) as adapter:
        await full_sync(adapter, cache, with_content=True)
    assert expired == [True]
    assert tokens.refreshes == 1
    assert [a.filename for a in cache.messages[message.immutable_id].attachments] == ["b.txt"]
