"""The IMAP adapter: a ``MailboxAdapter`` over any IMAP4rev1 server, plus IDLE (PROVIDERS.md I1-I5).

    full_sync_page(None)   LIST + STATUS of every folder: pin UIDVALIDITY, UIDNEXT-1 and
                           HIGHESTMODSEQ of each BEFORE fetching anything; then the first
                           ``page_size`` messages, INBOX first        -> folders, upserts, token
    full_sync_page(token)  the next ``page_size`` messages (a page may span folders) ...
    last page              cursor = every folder at its pinned position
    changes_since(cursor)  LIST + STATUS; folders whose HIGHESTMODSEQ moved get a step of
                           ``imap_sync.changes_step`` (QRESYNC VANISHED, CONDSTORE flags, new
                           UIDs); more than ``page_size`` new messages -> complete=False
    watch(on_change)       IDLE on INBOX on its own connection; calls ``on_change`` when the
                           server reports a change (poll the other folders: PROVIDERS.md I5)

Formats: page token and cursor are ``imap_state`` JSON; message ids ``"<uidvalidity>:<uid>:
<folder>"`` and folder ids the mailbox names (``imap_fetch``, ``imap_folders``).

Identity across moves and UIDVALIDITY changes: a message that another client moves shows up as a
VANISHED UID in one folder and a new UID in the other, which one ``changes_since`` reports together
(a deletion and an upsert in the same batch), so the cache never holds it twice. A folder whose
UIDVALIDITY changed is listed again: a ``FolderResync`` naming its new ids (apply drops the old
ones) and upserts of every message under the new ids. Both leave no duplicates; because every
record carries ``message_id_header``, apply keeps a moved message's cached row (and its API id) by
handing a deleted row's place to an upsert with the same Message-ID in the same batch (a move split
across two batches of one run still becomes a delete and an add). After ``MAX_RESETS_PER_WINDOW``
resets in a day a folder is left alone until the day is over, so a server that renumbers on every
SELECT cannot make every poll a full download. Why not ids made from the Message-ID: deletions
arrive as UIDs (VANISHED, EXPUNGE), so such ids need a UID -> id map per folder that the adapter
does not keep (in the cursor it would grow with the mailbox), ``fetch_content`` could not find a
message by a digest, and many messages (drafts, some spam) have no Message-ID at all.

Parsing MIME costs milliseconds per message, far more than receiving it; ``executor`` (e.g. a
``ProcessPoolExecutor`` shared by a worker) moves it off the event loop (``imap_fetch``).

Connections (``imap_pool``): at most ``max_connections`` per adapter (default 2: one for
``watch``, one for commands), kept open between calls and dropped after a few idle minutes or any
I/O error. The password is asked for (``password``: a ``Secret`` or an async source of one, read
at each connect) and sent at login only. A refused login raises ``AuthRevoked`` and every later call
raises it again without connecting: a wrong password must not turn into a retry storm that gets
the account locked. Network failures raise ``TransientError``; the engine retries those. Only
``watch`` waits between attempts (it reconnects with backoff until cancelled).

Never logs, never stores bodies (``fetch_content``/``fetch_attachment`` return them and forget
them), never marks anything \\Seen (``BODY.PEEK``).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor

from sync.providers.errors import PermanentError, TransientError
from sync.providers.imap_batch import Collected, pinned, reconcile, unchanged
from sync.providers.imap_connection import (
    DEFAULT_TIMEOUT,
    ImapConnection,
    ImapEndpoint,
    Security,
    check_login,
)
from sync.providers.imap_fetch import parse_provider_id, read_fetch
from sync.providers.imap_folders import folder_records, list_mailboxes
from sync.providers.imap_pool import ConnectionPool, LoginSettings, PasswordSource
from sync.providers.imap_state import MAX_RESETS_PER_WINDOW, SyncState
from sync.providers.imap_sync import FolderGone, Options, changes_step, full_sync_step, select
from sync.providers.imap_watch import watch_folder
from sync.providers.mime import extract_attachment, parse_message
from sync.providers.records import AttachmentRecord, ChangeBatch, FolderRecord, MessageContent
from vault import Secret

__all__ = [
    "MAX_RESETS_PER_WINDOW",
    "ImapAdapter",
    "ImapEndpoint",
    "MessageNotFound",
    "PasswordSource",
    "Security",
    "check_login",
]

IDLE_RENEW_SECONDS = 25 * 60.0  # RFC 2177: re-issue IDLE at least every 29 minutes


class MessageNotFound(PermanentError):
    """The message (or its folder, or its UIDVALIDITY) is gone."""

    code = "NOT_FOUND"


class ImapAdapter:
    """MailboxAdapter for one IMAP mailbox."""

    def __init__(
        self,
        endpoint: ImapEndpoint,
        password: Secret | PasswordSource,
        *,
        ssl_context: ssl.SSLContext | None = None,
        io_timeout: float = DEFAULT_TIMEOUT,
        page_size: int = 500,
        max_connections: int = 2,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        disabled_extensions: Iterable[str] = (),
        executor: Executor | None = None,
    ) -> None:
        if page_size < 1 or max_connections < 1:
            raise ValueError("page_size and max_connections must be >= 1")
        self._page_size = page_size
        self._idle_renew_seconds = idle_renew_seconds
        self._disabled = frozenset(name.upper() for name in disabled_extensions)
        self._executor = executor
        login = LoginSettings(endpoint, ssl_context, io_timeout, self._disabled)
        self._pool = ConnectionPool(login, password, max_connections)

    # -- MailboxAdapter ------------------------------------------------------------------------

    async def list_folders(self) -> list[FolderRecord]:
        async with self._pool.connection() as connection:
            return folder_records(await list_mailboxes(connection, with_status=True))

    async def full_sync_page(self, page_token: str | None, *, with_content: bool) -> ChangeBatch:
        async with self._pool.connection() as connection:
            options = self._options(connection, with_content)
            folders: list[FolderRecord] | None = None
            if page_token is None:
                mailboxes = await list_mailboxes(connection, with_status=True)
                folders = folder_records(mailboxes)
                state = SyncState({m.name: pinned(m) for m in mailboxes if m.syncable})
            else:
                state = SyncState.decode(page_token, "page")
            collected = Collected()
            for folder in list(state.folders.values()):
                if collected.budget(self._page_size) <= 0:
                    break
                if not folder.done:
                    step = full_sync_step(
                        connection, folder, collected.budget(self._page_size), options
                    )
                    await collected.run(step, state, folder)
        finished = all(folder.done for folder in state.folders.values())
        return ChangeBatch(
            upserts=collected.upserts,
            folders=folders,
            cursor=state.encode("cursor") if finished else None,
            next_page_token=None if finished else state.encode("page"),
            complete=finished,
            folder_resyncs=collected.resyncs,
        )

    async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
        state = SyncState.decode(cursor, "cursor")
        async with self._pool.connection() as connection:
            options = self._options(connection, with_content)
            mailboxes = await list_mailboxes(connection, with_status=True)
            collected = Collected()
            folders_changed = reconcile(state, mailboxes, collected.resyncs)
            statuses = {m.name: m.status for m in mailboxes}
            now = time.time()
            for folder in list(state.folders.values()):
                if folder.frozen_until > now or unchanged(folder, statuses[folder.name], options):
                    continue
                step = changes_step(connection, folder, collected.budget(self._page_size), options)
                folders_changed |= not await collected.run(step, state, folder)
        return ChangeBatch(
            upserts=collected.upserts,
            flag_updates=collected.flag_updates,
            deletions=collected.deletions,
            folders=folder_records(mailboxes) if folders_changed else None,
            cursor=state.encode("cursor"),
            complete=not collected.more,
            folder_resyncs=collected.resyncs,
        )

    async def fetch_content(self, provider_id: str) -> MessageContent:
        raw = await self._fetch_raw(provider_id)
        parsed = parse_message(raw)
        return MessageContent(
            text_body=parsed.text_body,
            html_body=parsed.html_body,
            headers=parsed.headers,
            raw_mime=raw,
        )

    async def fetch_attachment(self, provider_id: str, attachment: AttachmentRecord) -> bytes:
        if attachment.part_id is None:
            raise PermanentError("attachment without a part id", code="NO_PART_ID")
        try:
            return extract_attachment(await self._fetch_raw(provider_id), attachment.part_id)
        except KeyError:
            raise MessageNotFound("attachment part not in the message") from None

    async def aclose(self) -> None:
        await self._pool.aclose()

    # -- new mail ------------------------------------------------------------------------------

    async def watch(
        self,
        on_change: Callable[[], Awaitable[None]],
        *,
        folder: str = "INBOX",
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        """Until cancelled: IDLE on ``folder`` on a connection of its own, awaiting
        ``on_change()`` after the server reports a change there, and after every reconnect
        (changes may have been missed meanwhile). ``on_change`` should return quickly (signal
        the worker, do not sync inline). Transient failures reconnect with backoff (1 s doubling
        to 60 s, with jitter); a refused login or a permanent error is raised. Returns at once
        when the server has no IDLE: poll instead. ``on_idle()`` is called each time the server
        has confirmed IDLE (health reporting; tests measure from there)."""
        if self._pool.size < 2:
            raise ValueError("watch needs max_connections >= 2: its connection is its own")
        failures = 0

        def idling() -> None:
            nonlocal failures
            failures = 0
            if on_idle is not None:
                on_idle()

        while True:
            try:
                async with self._pool.connection(keep=False) as connection:
                    if "IDLE" not in connection.capabilities - self._disabled:
                        return
                    if failures:
                        await on_change()
                    await watch_folder(
                        connection,
                        folder,
                        on_change,
                        renew_seconds=self._idle_renew_seconds,
                        on_idle=idling,
                    )
            except TransientError:
                failures += 1
                delay = min(60.0, 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)
                await asyncio.sleep(delay)

    # -- helpers -------------------------------------------------------------------------------

    def _options(self, connection: ImapConnection, with_content: bool) -> Options:
        caps = connection.capabilities - self._disabled
        return Options(
            with_content=with_content,
            qresync="QRESYNC" in connection.enabled,
            condstore="CONDSTORE" in caps or "QRESYNC" in connection.enabled,
            esearch="ESEARCH" in caps,
            executor=self._executor,
        )

    async def _fetch_raw(self, provider_id: str) -> bytes:
        folder, validity, uid = parse_provider_id(provider_id)
        async with self._pool.connection() as connection:
            try:
                selected = await select(connection, folder)
            except FolderGone:
                raise MessageNotFound("the message's folder is gone") from None
            if selected.validity != validity:
                raise MessageNotFound("the folder was renumbered (UIDVALIDITY)")
            for response in await connection.run(f"UID FETCH {uid} (UID BODY.PEEK[])"):
                if response.kind == "FETCH":
                    fetched = read_fetch(response)
                    if fetched.uid == uid and fetched.raw is not None:
                        return fetched.raw
        raise MessageNotFound("the message is gone")
