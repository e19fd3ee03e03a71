"""The Gmail adapter: a ``MailboxAdapter`` over the Gmail API v1 (PROVIDERS.md G1-G9).

Full sync (G1)::

    full_sync_page(None)   getProfile -> historyId H (pinned BEFORE listing), labels.list,
                           messages.list(includeSpamTrash, maxResults=page_size), batched
                           messages.get of each id
                           -> ChangeBatch(folders, upserts, next_page_token="H:<list token>")
    full_sync_page("H:t")  messages.list(pageToken=t), batched messages.get of each id -> ...
    last page              next_page_token=None, cursor="H"

Mail that changes while the pages are listed is caught by history from H afterwards; listing
and replay can overlap, which is harmless because every record is the message's full state.
A message deleted between listing and fetching (404) is skipped; history will delete it.

Partial sync (G2-G5): ``changes_since("H")`` pages ``history.list(startHistoryId=H,
maxResults=page_size)`` and folds the records into one net change per message
(``sync.providers.gmail_history``): added messages are fetched whole, label-only changes become
``FlagsRecord``s from the labels in the history record (no fetch), deletions win over everything
before them. It follows ``nextPageToken`` to the end and then returns the response's
``historyId`` as the cursor, with ``complete=True``. After ``max_history_pages`` pages, or once
``page_size`` new messages wait to be fetched (so a batch stays about as big as a full-sync
page), it stops early with ``complete=False`` and cursor = the id of the last record folded:
every record up to it has been applied. (The ``historyId`` of an intermediate page is the
mailbox's *current* id; storing it would skip the records of the pages not yet read.)
A 404 means H is too old: ``CursorExpired``, and the engine runs exactly one full sync (G4).

Formats: cursor = a Gmail historyId in decimal; page token = ``"<historyId>:<Gmail list page
token>"`` (split at the first colon; the historyId is digits). A malformed cursor or page token,
or a list page token Gmail rejects, raises ``CursorExpired``: starting over is the only cure.

Fetching: ``format=raw`` with content (bodies and attachment metadata parsed by
``sync.providers.mime``); ``format=metadata`` without, which also works for tokens limited to
the gmail.metadata scope, but cannot see attachments (``attachments_known=False``). Messages go
through the batch endpoint, 50 calls per batch request, up to ``concurrency`` batch requests in
flight (``sync.providers.gmail_client``). Measured with ``.venv/bin/python -m
tests.sync.providers.bench_gmail_sync --messages 2000`` (the emulator in its own process, a full
sync of 2,000 corpus messages, on a shared two-core machine):

    load ~3    batch, raw 390-460 msg/s, metadata 530-630 msg/s | single messages.get 80-126 msg/s
    load ~9    batch, raw  65-160 msg/s, metadata 100-200 msg/s | single messages.get 38-49 msg/s
    client CPU per message: batch 2.0-2.4 ms (raw), 0.9-1.2 ms (metadata) | single 5.1-5.3 ms

The batch endpoint wins because every HTTP request costs the client ~3 ms of CPU; batches in
flight beyond one hardly matter against the emulator (it is CPU-bound). In production Gmail's
quota caps any strategy: messages.get costs 5 of 15,000 units per user-minute, about 50
messages/s; and Gmail counts each inner call towards its per-user concurrency limit, so 8
batches of 50 in flight may draw 429s there: lower ``concurrency`` for production if they show.

Never logs, never stores bodies (``fetch_content`` and ``fetch_attachment`` return them and
forget them), never sleeps; the only retry is one resend of the inner calls of a batch that
failed: everything else the engine backs off from and repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from sync.providers.adapter import TokenSource
from sync.providers.errors import CursorExpired, PermanentError
from sync.providers.gmail_actions import GmailActions
from sync.providers.gmail_batch import MAX_CALLS
from sync.providers.gmail_client import GmailClient, NotFound, Params
from sync.providers.gmail_history import HistoryFold
from sync.providers.gmail_records import (
    METADATA_HEADERS,
    folder_records,
    message_content,
    message_record,
    raw_bytes,
)
from sync.providers.http import gather_concurrently
from sync.providers.mime import extract_attachment
from sync.providers.records import (
    AttachmentRecord,
    ChangeBatch,
    FolderRecord,
    MessageContent,
    MessageRecord,
)

MAX_PAGE_SIZE = 500  # Gmail's cap for messages.list and history.list maxResults
RAW: Params = {"format": "raw"}
METADATA: Params = {"format": "metadata", "metadataHeaders": METADATA_HEADERS}


class GmailAdapter(GmailActions):
    """One Gmail mailbox. ``base_url`` is ``https://gmail.googleapis.com`` or an emulator's."""

    def __init__(
        self,
        base_url: str,
        token_source: TokenSource,
        *,
        http: httpx.AsyncClient | None = None,
        concurrency: int = 8,
        page_size: int = MAX_PAGE_SIZE,
        max_retries: int = 1,
        max_history_pages: int = 10,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE or max_history_pages < 1:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, max_history_pages >= 1")
        self._client = GmailClient(
            base_url, token_source, http=http, concurrency=concurrency, max_retries=max_retries
        )
        self._page_size = page_size
        self._max_history_pages = max_history_pages

    async def list_folders(self) -> list[FolderRecord]:
        labels = await self._client.get("/labels", "labels.list")
        return folder_records(labels.get("labels", ()))

    async def full_sync_page(self, page_token: str | None, *, with_content: bool) -> ChangeBatch:
        folders: list[FolderRecord] | None = None
        if page_token is None:
            profile = await self._client.get("/profile", "getProfile")
            start, list_token = _history_id(profile.get("historyId")), None
            folders = await self.list_folders()
        else:
            start, list_token = _parse_page_token(page_token)
        params: dict[str, str | int] = {"maxResults": self._page_size, "includeSpamTrash": "true"}
        if list_token is not None:
            params["pageToken"] = list_token
        try:
            listing = await self._client.get("/messages", "messages.list", params)
        except PermanentError as error:
            if list_token is not None and error.code in ("HTTP_400", NotFound.code):
                raise CursorExpired("messages.list: page token rejected") from None
            raise
        ids = [str(entry["id"]) for entry in listing.get("messages", ())]
        found = await self._fetch(ids, with_content)
        next_list_token = listing.get("nextPageToken")
        return ChangeBatch(
            upserts=[record for record in found if record is not None],
            folders=folders,
            cursor=None if next_list_token else str(start),
            next_page_token=f"{start}:{next_list_token}" if next_list_token else None,
            complete=not next_list_token,
        )

    async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
        history, new_cursor, complete = await self._read_history(cursor)
        added = list(history.added)
        found = await self._fetch(added, with_content)
        # Added, then deleted before we fetched it: the deletion is in a later history page.
        vanished = [
            message_id for message_id, record in zip(added, found, strict=True) if record is None
        ]
        return ChangeBatch(
            upserts=[record for record in found if record is not None],
            flag_updates=history.flag_updates(),
            deletions=[*history.deleted, *vanished],
            cursor=new_cursor,
            complete=complete,
        )

    async def fetch_content(self, provider_id: str) -> MessageContent:
        return message_content(await self._client.get_message(provider_id, RAW))

    async def fetch_attachment(self, provider_id: str, attachment: AttachmentRecord) -> bytes:
        if attachment.part_id is None:
            raise PermanentError("attachment without a part id", code="NO_PART_ID")
        raw = raw_bytes(await self._client.get_message(provider_id, RAW))
        try:
            return extract_attachment(raw, attachment.part_id)
        except KeyError:
            raise NotFound("attachment part not in the message") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _read_history(self, cursor: str) -> tuple[HistoryFold, str, bool]:
        """History after ``cursor``, folded: (the fold, the cursor that follows it, whether the
        listing was read to its end). Stops early as the module docstring says."""
        if not cursor.isdigit():
            raise CursorExpired("malformed Gmail history cursor")
        history = HistoryFold(covered=int(cursor))
        params: dict[str, str | int] = {"startHistoryId": cursor, "maxResults": self._page_size}
        pages = 0
        while True:
            try:
                page = await self._client.get("/history", "history.list", params)
            except NotFound:
                raise CursorExpired("history.list: startHistoryId too old") from None
            try:
                history.fold(page.get("history", ()))
            except (KeyError, TypeError, ValueError) as exc:
                raise PermanentError("history.list: malformed record", code="MALFORMED") from exc
            pages += 1
            next_token = page.get("nextPageToken")
            if not next_token:
                # Only the last page's historyId covers everything that was listed.
                return history, str(_history_id(page.get("historyId"))), True
            if pages >= self._max_history_pages or len(history.added) >= self._page_size:
                return history, str(history.covered), False
            params["pageToken"] = next_token

    async def _fetch(
        self, message_ids: Sequence[str], with_content: bool
    ) -> list[MessageRecord | None]:
        """Each message as a record (None if it is gone), in the order of ``message_ids``:
        batches of ``MAX_CALLS``, up to ``concurrency`` batch requests in flight."""
        params = RAW if with_content else METADATA

        async def batch(chunk: Sequence[str]) -> list[MessageRecord | None]:
            records: list[MessageRecord | None] = []
            for message in await self._client.get_messages(chunk, params):
                records.append(
                    None if message is None else message_record(message, with_content=with_content)
                )
                # Parsing takes ~1 ms a message: let the other batches' I/O run in between.
                await asyncio.sleep(0)
            return records

        chunks = [message_ids[i : i + MAX_CALLS] for i in range(0, len(message_ids), MAX_CALLS)]
        found = await gather_concurrently([batch(chunk) for chunk in chunks])
        return [record for records in found for record in records]


def _history_id(value: object) -> int:
    text = str(value)
    if not text.isdigit():
        raise PermanentError("Gmail sent no usable historyId", code="MALFORMED")
    return int(text)


def _parse_page_token(page_token: str) -> tuple[int, str]:
    start, _, list_token = page_token.partition(":")
    if not start.isdigit() or not list_token:
        raise CursorExpired("malformed Gmail full-sync page token")
    return int(start), list_token
