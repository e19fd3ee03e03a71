"""sync.providers.gmail against the Gmail emulator over real HTTP: sync, errors, auth, content."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from html import unescape

import httpx
import pytest

from app.types import FolderRole
from emulators.corpus import (
    Defect,
    MessageKind,
    make_broken_message,
    make_mailbox,
    make_message,
)
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL, SCOPE_METADATA
from emulators.gmail_records import StoredMessage
from emulators.google_identity import TokenSet
from emulators.runner import serve_in_thread
from sync.providers.adapter import MailboxAdapter
from sync.providers.errors import (
    AuthRevoked,
    CursorExpired,
    PermanentError,
    RateLimited,
    TransientError,
)
from sync.providers.gmail import GmailAdapter
from sync.providers.gmail_client import GmailClient
from sync.providers.records import ChangeBatch, MessageRecord

ME = "alice@example.com"
CLIENT, SECRET = "client-1", "secret-1"
PAGE = 100  # small pages: a 300-message mailbox takes three


class OAuthTokens:
    """A token source as the engine's will be: refreshes at the emulator's token endpoint."""

    def __init__(self, token_uri: str, tokens: TokenSet) -> None:
        assert tokens.refresh_token is not None
        self.token_uri = token_uri
        self._refresh_token = tokens.refresh_token
        self.access_token = tokens.access_token
        self.refreshes = 0

    async def __call__(self, force_refresh: bool) -> str:
        if not force_refresh:
            return self.access_token
        self.refreshes += 1
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": CLIENT,
            "client_secret": SECRET,
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(self.token_uri, data=form)
        if response.status_code == 400 and response.json().get("error") == "invalid_grant":
            raise AuthRevoked("invalid_grant")
        response.raise_for_status()
        self.access_token = response.json()["access_token"]
        return self.access_token


@dataclass
class Env:
    emulator: GoogleEmulator
    base_url: str
    tokens: OAuthTokens
    adapter: GmailAdapter

    @property
    def mailbox(self) -> StoredMailbox:
        return StoredMailbox(self.emulator, ME)


class StoredMailbox:
    """What the emulator holds: the truth a sync must reproduce."""

    def __init__(self, emulator: GoogleEmulator, email: str) -> None:
        self.box = emulator.mailbox(email)

    def messages(self) -> dict[str, StoredMessage]:
        page = self.box.list_messages(include_spam_trash=True, max_results=100_000)
        return {message.id: message for message in page.items}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, str]]:
    # The real clock: quota errors say "Retry after <time>" and the adapter compares with now.
    emulator = GoogleEmulator(seed=11)
    with serve_in_thread(emulator.app) as server:
        yield emulator, server.base_url


def make_env(emulator: GoogleEmulator, base_url: str) -> Env:
    tokens = OAuthTokens(
        emulator.urls(base_url).token_uri,
        emulator.identity.issue_tokens(ME, CLIENT, [SCOPE_FULL]),
    )
    adapter = GmailAdapter(base_url, tokens, page_size=PAGE)
    return Env(emulator, base_url, tokens, adapter)


@pytest.fixture
async def env(served: tuple[GoogleEmulator, str]) -> AsyncIterator[Env]:
    emulator, base_url = served
    emulator.reset()
    emulator.register_client(CLIENT, SECRET, ["http://127.0.0.1/callback"])
    emulator.add_user(ME)
    env = make_env(emulator, base_url)
    yield env
    await env.adapter.aclose()


async def full_sync(
    adapter: MailboxAdapter, *, with_content: bool = True, page_token: str | None = None
) -> tuple[dict[str, MessageRecord], str, list[ChangeBatch]]:
    """Every page to the end: (records by id, final cursor, the batches). Typed with the
    protocol, so mypy checks that GmailAdapter is a MailboxAdapter."""
    records: dict[str, MessageRecord] = {}
    batches = []
    while True:
        batch = await adapter.full_sync_page(page_token, with_content=with_content)
        batches.append(batch)
        for record in batch.upserts:
            assert record.provider_id not in records, "a full sync returned a message twice"
            records[record.provider_id] = record
        page_token = batch.next_page_token
        if page_token is None:
            assert batch.cursor is not None
            assert batch.complete
            return records, batch.cursor, batches
        assert batch.cursor is None
        assert not batch.complete


def apply(state: dict[str, MessageRecord], batch: ChangeBatch) -> None:
    """What sync.apply does with a batch, reduced to a dict."""
    for record in batch.upserts:
        state[record.provider_id] = record
    for flags in batch.flag_updates:
        if flags.provider_id in state:  # a label change never creates a message
            state[flags.provider_id] = replace(
                state[flags.provider_id],
                label_ids=flags.label_ids,
                unread=flags.unread,
                starred=flags.starred,
            )
    for provider_id in batch.deletions:
        state.pop(provider_id, None)


async def catch_up(adapter: MailboxAdapter, state: dict[str, MessageRecord], cursor: str) -> str:
    while True:
        batch = await adapter.changes_since(cursor, with_content=False)
        apply(state, batch)
        assert batch.cursor is not None
        cursor = batch.cursor
        if batch.complete:
            return cursor


def assert_mirrors(state: dict[str, MessageRecord], mailbox: StoredMailbox) -> None:
    stored = mailbox.messages()
    assert set(state) == set(stored)
    for message_id, message in stored.items():
        record = state[message_id]
        assert set(record.label_ids) == set(message.label_ids), message_id
        assert record.thread_provider_id == message.thread_id
        assert record.unread == ("UNREAD" in message.label_ids)
        assert record.starred == ("STARRED" in message.label_ids)


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def oracle_addresses(message: EmailMessage, header: str) -> list[tuple[str, str]]:
    """Addresses as the stdlib's modern policy reads them."""
    value = message[header]
    return [] if value is None else [(a.display_name, a.addr_spec) for a in value.addresses]


def label_some(env: Env, stored: list[StoredMessage]) -> None:
    """Stars, reads, archives, trashes and spams a few, so labels and flags vary."""
    box = env.mailbox.box
    box.create_label("Work")
    for message in stored[::7]:
        box.modify(message.id, add=["STARRED"])
    for message in stored[::5]:
        box.modify(message.id, remove=["UNREAD"])
    for message in stored[1::11]:
        box.modify(message.id, add=["Label_1"], remove=["INBOX"])
    box.trash(stored[2].id)
    box.modify(stored[3].id, add=["SPAM"], remove=["INBOX"])


# -- full sync ------------------------------------------------------------------------------


async def test_full_sync_reproduces_the_mailbox(env: Env) -> None:
    stored = env.emulator.load_corpus(ME, seed=21, count=300)
    broken = [
        env.mailbox.box.deliver(make_broken_message(random.Random(1), defect)) for defect in Defect
    ]
    label_some(env, stored)
    records, cursor, batches = await full_sync(env.adapter)

    assert cursor == str(env.mailbox.box.history_id)
    assert len(batches) == 4
    assert batches[0].folders is not None
    assert all(batch.folders is None for batch in batches[1:])
    assert_mirrors(records, env.mailbox)
    # Every message fetched exactly once, through the batch endpoint.
    assert env.emulator.stats.calls("messages.get") == len(stored) + len(broken)
    assert env.emulator.stats.calls("batch") == sum(-(-len(b.upserts) // 50) for b in batches)

    for message in env.mailbox.messages().values():
        record = records[message.id]
        original = parse(message.raw)
        assert record.size == len(message.raw)
        assert record.snippet == unescape(message.parsed.snippet)
        assert record.draft is False
        assert record.attachments_known
        if message.id in {b.id for b in broken}:
            assert record.parse_error
            continue
        assert record.parse_error is None
        assert record.subject == str(original["Subject"])
        assert record.date == parsedate_to_datetime(str(original["Date"]))
        assert record.message_id_header == str(original["Message-ID"])
        in_reply_to = original["In-Reply-To"]
        assert record.in_reply_to == (None if in_reply_to is None else str(in_reply_to))
        for header, field in [("From", "from_addresses"), ("To", "to_addresses")]:
            addresses = [(a.name, a.email) for a in getattr(record, field)]
            assert addresses == oracle_addresses(original, header)
        attachments = [
            (part.get_filename(), part.get_content_type(), len(part.get_payload(decode=True)))
            for part in original.walk()
            if part.get_content_disposition() == "attachment"
        ]
        assert [(a.filename, a.content_type, a.size) for a in record.attachments] == attachments
        assert record.content is not None
        plain = original.get_body(preferencelist=("plain",))
        assert plain is not None
        assert record.content.text_body == plain.get_content().replace("\r\n", "\n")


async def test_metadata_format_gives_the_same_envelope_without_bodies(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=22, count=60)
    with_raw, _, _ = await full_sync(env.adapter)
    with_metadata, _, _ = await full_sync(env.adapter, with_content=False)
    assert set(with_raw) == set(with_metadata)
    for message_id, raw_record in with_raw.items():
        record = with_metadata[message_id]
        assert record.content is None
        assert not record.attachments_known
        assert record.attachments == ()
        unknown = {"content": None, "attachments": (), "attachments_known": False}
        assert replace(raw_record, **unknown) == record  # type: ignore[arg-type]


async def test_a_metadata_scoped_token_can_sync_without_content(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=23, count=10)
    tokens = env.emulator.identity.issue_tokens(ME, CLIENT, [SCOPE_METADATA])
    adapter = GmailAdapter(env.base_url, OAuthTokens(env.tokens.token_uri, tokens))
    try:
        records, _, _ = await full_sync(adapter, with_content=False)
        assert len(records) == 10
        with pytest.raises(PermanentError):
            await adapter.full_sync_page(None, with_content=True)  # format=raw is refused
    finally:
        await adapter.aclose()


async def test_resuming_from_a_page_token_gives_the_same_mailbox(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=24, count=150)
    everything, cursor, _ = await full_sync(env.adapter)
    first = await env.adapter.full_sync_page(None, with_content=False)
    assert first.next_page_token is not None
    assert first.next_page_token.startswith(f"{cursor}:")
    # A new worker (a new adapter) picks the stored token up.
    resumed = make_env(env.emulator, env.base_url)
    try:
        rest, resumed_cursor, _ = await full_sync(
            resumed.adapter, with_content=False, page_token=first.next_page_token
        )
    finally:
        await resumed.adapter.aclose()
    combined = {record.provider_id for record in first.upserts} | set(rest)
    assert combined == set(everything)
    assert len(first.upserts) + len(rest) == len(everything)
    assert resumed_cursor == cursor


async def test_changes_during_a_full_sync_are_caught_by_history_afterwards(env: Env) -> None:
    stored = env.emulator.load_corpus(ME, seed=25, count=150)
    box = env.mailbox.box
    state: dict[str, MessageRecord] = {}
    first = await env.adapter.full_sync_page(None, with_content=False)
    apply(state, first)
    fetched = [record.provider_id for record in first.upserts]
    # Between pages: new mail, a change to a fetched message, deletions on both sides.
    box.deliver(make_message(random.Random(5), kind=MessageKind.PLAIN))
    box.modify(fetched[0], add=["STARRED"], remove=["UNREAD"])
    box.delete(fetched[1])
    not_yet = next(m.id for m in stored if m.id not in state)
    box.delete(not_yet)
    page_token = first.next_page_token
    while page_token is not None:
        batch = await env.adapter.full_sync_page(page_token, with_content=False)
        apply(state, batch)
        page_token = batch.next_page_token
    assert batch.cursor is not None
    cursor = await catch_up(env.adapter, state, batch.cursor)
    assert cursor == str(box.history_id)
    assert_mirrors(state, env.mailbox)


async def test_a_message_deleted_between_listing_and_fetching_is_skipped(env: Env) -> None:
    stored = env.emulator.load_corpus(ME, seed=26, count=60)
    victim = stored[-1].id  # the newest: listed on the first page
    # Every inner messages.get waits 0.3 s before it reads the mailbox; delete meanwhile.
    env.emulator.faults.inject("latency", times=60, delay=0.3, method="messages.get")
    loop = asyncio.get_running_loop()
    loop.call_later(0.15, env.mailbox.box.delete, victim)
    records, cursor, _ = await full_sync(env.adapter)
    assert victim not in records
    assert len(records) == 59
    later = await env.adapter.changes_since(cursor, with_content=False)
    assert list(later.deletions) == [victim]


# -- partial sync ---------------------------------------------------------------------------


async def test_changes_since_gives_exactly_what_changed(env: Env) -> None:
    stored = env.emulator.load_corpus(ME, seed=27, count=30)
    box = env.mailbox.box
    records, cursor, _ = await full_sync(env.adapter, with_content=False)
    new = [box.deliver(make_message(random.Random(n))) for n in range(2)]
    starred, read, deleted = stored[0].id, stored[1].id, stored[2].id
    box.modify(starred, add=["STARRED"])
    box.modify(read, remove=["UNREAD"])
    box.modify(read, add=["IMPORTANT"])
    box.delete(deleted)
    fleeting = box.deliver(make_message(random.Random(10))).id
    box.modify(fleeting, add=["STARRED"])
    box.delete(fleeting)
    relabelled_new = box.deliver(make_message(random.Random(11))).id
    box.modify(relabelled_new, add=["STARRED"])
    gets_before = env.emulator.stats.calls("messages.get")

    batch = await env.adapter.changes_since(cursor, with_content=True)

    assert batch.complete
    assert batch.cursor == str(box.history_id)
    assert [r.provider_id for r in batch.upserts] == [new[0].id, new[1].id, relabelled_new]
    assert batch.upserts[2].starred
    assert all(r.content is not None for r in batch.upserts)
    flags = {f.provider_id: f for f in batch.flag_updates}
    assert set(flags) == {starred, read}
    assert flags[starred].starred
    assert flags[starred].unread
    assert not flags[read].unread
    assert set(flags[read].label_ids) == set(box.get(read).label_ids)
    assert sorted(batch.deletions) == sorted([deleted, fleeting])
    # Only the messages added and still there were fetched; label changes cost no fetch.
    assert env.emulator.stats.calls("messages.get") - gets_before == 3
    # Replaying the same range gives the same answer (the engine may crash before saving).
    again = await env.adapter.changes_since(cursor, with_content=True)
    assert [r.provider_id for r in again.upserts] == [r.provider_id for r in batch.upserts]
    assert again.deletions == batch.deletions
    apply(records, batch)
    assert_mirrors(records, env.mailbox)


async def test_no_changes_keeps_the_cursor_moving_with_the_mailbox(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=28, count=3)
    _, cursor, _ = await full_sync(env.adapter)
    batch = await env.adapter.changes_since(cursor, with_content=False)
    assert (batch.upserts, batch.flag_updates, batch.deletions) == ([], [], [])
    assert batch.cursor == cursor
    assert batch.complete


async def test_long_histories_come_in_bounded_batches_with_safe_cursors(env: Env) -> None:
    _, cursor, _ = await full_sync(env.adapter)
    box = env.mailbox.box
    delivered = [box.deliver(raw) for raw in make_mailbox(29, 230)]
    for message in delivered[:40]:
        box.modify(message.id, add=["STARRED"])
    state: dict[str, MessageRecord] = {}
    batches = []
    while True:
        batch = await env.adapter.changes_since(cursor, with_content=False)
        batches.append(batch)
        apply(state, batch)
        assert batch.cursor is not None
        cursor = batch.cursor
        if batch.complete:
            break
        # The cursor of a cut-short batch is the last record read, not the mailbox's id.
        assert int(cursor) < box.history_id
    assert len(batches) == 3
    assert all(len(batch.upserts) <= PAGE for batch in batches)
    upserted = [r.provider_id for batch in batches for r in batch.upserts]
    assert len(upserted) == len(set(upserted)) == 230
    assert cursor == str(box.history_id)
    assert_mirrors(state, env.mailbox)


async def test_an_expired_history_id_means_a_full_sync(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=30, count=5)
    _, cursor, _ = await full_sync(env.adapter)
    env.mailbox.box.deliver(make_message(random.Random(1)))
    env.mailbox.box.expire_history()
    with pytest.raises(CursorExpired):
        await env.adapter.changes_since(cursor, with_content=False)
    for bad in ("", "12a", "-5"):
        with pytest.raises(CursorExpired):
            await env.adapter.changes_since(bad, with_content=False)
    for bad in ("nonsense", "123:", ":abc"):
        with pytest.raises(CursorExpired):
            await env.adapter.full_sync_page(bad, with_content=False)
    with pytest.raises(CursorExpired):  # Gmail refuses the list page token itself
        await env.adapter.full_sync_page("123:%%%", with_content=False)


# -- folders, content -----------------------------------------------------------------------


async def test_labels_become_folders_with_roles(env: Env) -> None:
    box = env.mailbox.box
    work = box.create_label("Work")
    clients = box.create_label("Work/Clients")
    folders = {folder.provider_id: folder for folder in await env.adapter.list_folders()}
    assert folders["INBOX"].role is FolderRole.INBOX
    assert folders["SENT"].role is FolderRole.SENT
    assert folders["DRAFT"].role is FolderRole.DRAFTS
    assert folders["TRASH"].role is FolderRole.TRASH
    assert folders["SPAM"].role is FolderRole.SPAM
    assert folders["STARRED"].role is FolderRole.STARRED
    assert folders["IMPORTANT"].role is FolderRole.IMPORTANT
    assert folders["CATEGORY_PROMOTIONS"].role is FolderRole.CATEGORY
    assert folders[work.id].role is FolderRole.CUSTOM
    assert folders[clients.id].parent_provider_id == work.id
    assert folders[clients.id].name == "Work/Clients"
    assert "UNREAD" not in folders  # a flag, not a folder


async def test_fetch_content_and_attachments_return_the_bytes(env: Env) -> None:
    raw = make_message(random.Random(3), kind=MessageKind.MIXED)
    message_id = env.mailbox.box.deliver(raw).id
    batch = await env.adapter.full_sync_page(None, with_content=False)
    assert batch.upserts[0].attachments == ()  # metadata cannot see them
    content = await env.adapter.fetch_content(message_id)
    assert content.raw_mime == raw
    original = parse(raw)
    plain = original.get_body(preferencelist=("plain",))
    assert plain is not None
    assert content.text_body == plain.get_content().replace("\r\n", "\n")
    assert ("Message-ID", str(original["Message-ID"])) in content.headers
    [record] = (await env.adapter.full_sync_page(None, with_content=True)).upserts
    expected = [p.get_payload(decode=True) for p in original.iter_attachments()]
    assert record.attachments
    got = [await env.adapter.fetch_attachment(message_id, a) for a in record.attachments]
    assert got == expected
    missing = replace(record.attachments[0], part_id="9.9")
    with pytest.raises(PermanentError):
        await env.adapter.fetch_attachment(message_id, missing)
    env.mailbox.box.delete(message_id)
    with pytest.raises(PermanentError) as gone:
        await env.adapter.fetch_content(message_id)
    assert gone.value.code == "NOT_FOUND"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "method"),
    [("429", "messages.list"), ("403_user_rate_limit", "getProfile"), ("403_rate_limit", "batch")],
)
async def test_rate_limits_say_when_to_retry(env: Env, kind: str, method: str) -> None:
    env.emulator.load_corpus(ME, seed=31, count=5)
    if method == "batch":  # every inner call, first try and retry alike
        env.emulator.faults.inject(kind, times=10, method="messages.get", retry_after=7)
    else:
        env.emulator.faults.inject(kind, method=method, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await env.adapter.full_sync_page(None, with_content=True)
    assert limited.value.retry_after == 7


async def test_an_exhausted_quota_says_when_it_refills(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=32, count=5)
    env.emulator.quota.units_per_minute = 12  # getProfile 1 + labels.list 1 + messages.list 5
    with pytest.raises(RateLimited) as limited:
        await full_sync(env.adapter)
    # No Retry-After header: the time comes from Gmail's "Retry after <time>" message.
    assert limited.value.retry_after is not None
    assert 0 < limited.value.retry_after <= 60


async def test_server_errors_and_timeouts_are_transient(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=33, count=5)
    env.emulator.faults.inject("503", method="labels.list")
    with pytest.raises(TransientError):
        await env.adapter.full_sync_page(None, with_content=False)
    env.emulator.faults.inject("500", times=10, method="messages.get")
    with pytest.raises(TransientError):
        await env.adapter.full_sync_page(None, with_content=False)
    env.emulator.faults.clear()
    async with httpx.AsyncClient(timeout=0.2) as http:
        adapter = GmailAdapter(env.base_url, env.tokens, http=http)
        env.emulator.faults.inject("latency", delay=1.0, method="getProfile")
        with pytest.raises(TransientError):
            await adapter.full_sync_page(None, with_content=False)
        await adapter.aclose()  # leaves open a client it did not create
        assert not http.is_closed


async def test_a_cancelled_call_lets_its_request_finish_first(env: Env) -> None:
    # httpcore leaks the socket of a TLS handshake cancelled half-way, so a request that has
    # left runs to its answer before the cancelled caller goes (sync.providers.http).
    await env.adapter.list_folders()  # the token is fetched and the connection open
    client = GmailClient(env.base_url, env.tokens)
    served = env.emulator.faults.served
    env.emulator.faults.inject("latency", delay=0.5, method="getProfile")
    caller = asyncio.ensure_future(client.get("/profile", "getProfile"))
    for _ in range(500):  # until the emulator took the request (it has left), 5 s at most
        if env.emulator.faults.served > served:
            break
        await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert env.emulator.stats.calls("getProfile") == 1  # answered before the caller ended
    assert await client.get("/profile", "getProfile") != {}  # the client still works
    await client.aclose()


async def test_one_failed_inner_call_is_retried_once(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=34, count=40)
    env.emulator.faults.inject("503", times=2, method="messages.get")
    env.emulator.faults.inject("429", times=1, method="messages.get")
    records, _, _ = await full_sync(env.adapter)
    assert len(records) == 40
    assert env.emulator.stats.calls("messages.get") == 43
    assert env.emulator.stats.calls("batch") == 2


async def test_an_expired_access_token_is_refreshed_once(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=35, count=120)
    await env.adapter.list_folders()
    env.emulator.identity.expire_access_tokens(ME)
    records, _, _ = await full_sync(env.adapter)
    assert len(records) == 120
    assert env.tokens.refreshes == 1


async def test_a_token_expiring_under_concurrent_batches_is_refreshed_once(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=36, count=PAGE)
    # messages.list is authenticated, then held 0.3 s; the token dies meanwhile, so both
    # batch requests of the page carry a dead token and all their inner calls answer 401.
    env.emulator.faults.inject("latency", delay=0.3, method="messages.list")
    loop = asyncio.get_running_loop()
    loop.call_later(0.15, env.emulator.identity.expire_access_tokens, ME)
    records, _, _ = await full_sync(env.adapter)
    assert len(records) == PAGE
    assert env.tokens.refreshes == 1
    statuses = env.emulator.snapshot()["statuses"]["messages.get"]
    assert statuses == {"200": PAGE, "401": PAGE}


async def test_a_revoked_grant_propagates(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=37, count=3)
    env.emulator.identity.revoke(ME)
    with pytest.raises(AuthRevoked):
        await env.adapter.full_sync_page(None, with_content=False)
    assert env.tokens.refreshes == 1
