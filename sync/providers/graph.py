"""The Microsoft Graph mailbox adapter: Graph mail <-> plain records and typed errors.

    full_sync_page(None)  -> folder tree delta + well-known folders + first pages  (folders=...)
    full_sync_page(token) -> one more page of each of up to `max_concurrency` folders' first
                             delta rounds ... the last page adds one incremental round of every
                             folder and returns `cursor` (every folder's deltaLink)
    changes_since(cursor) -> folder tree round, then every folder's round (M1), merged by
                             `graph_changes` (moves stay upserts; a 410 restarts one folder only)

State lives only in the page token and the cursor (`graph_state`), which the engine stores with
the batch they come with; a killed worker resumes from the last stored one. CursorExpired is
raised only when that state is unreadable, never for a dead delta link (M5: that folder alone
restarts and a `FolderResync` tells apply which cached messages are gone).

One adapter instance per mailbox, shared by every caller: its `GraphClient` caps the requests in
flight to that mailbox at `max_concurrency` (Graph allows 4, M6). It never sleeps on RateLimited
(the engine waits), never touches the database and never holds a refresh token: access tokens
come from `token_source`.

Batches: `folders=` is always the complete folder list (absent folders are gone); apply
upserts, then deletions, then `folder_resyncs`; an id is never both upserted and deleted in one
batch. label_ids = (parentFolderId, "category:<name>"...). `with_content` may change between
calls (delta links keep the $select of their first call, M3): an item that comes without its
body gets it by one GET.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from app.types import FolderRole
from sync.providers.adapter import TokenSource
from sync.providers.errors import PermanentError, TransientError
from sync.providers.graph_actions import GraphActions
from sync.providers.graph_changes import FolderRound, merge_rounds
from sync.providers.graph_client import DeltaGone, GraphClient, ItemNotFound
from sync.providers.graph_delta import (
    FOLDER_TREE_DELTA,
    attachment_path,
    delta_page,
    delta_round,
    folder_message_ids,
    folder_path,
    message_delta_start,
    message_path,
)
from sync.providers.graph_messages import message_records
from sync.providers.graph_records import (
    ROOT_FOLDER,
    WELL_KNOWN_ROLES,
    folder_record,
    message_content,
)
from sync.providers.graph_state import FolderSync, SyncState
from sync.providers.http import gather_concurrently
from sync.providers.records import (
    AttachmentRecord,
    ChangeBatch,
    FolderRecord,
    FolderResync,
    MessageContent,
)

__all__ = ["GraphAdapter"]


class GraphAdapter(GraphActions):
    """The MailboxAdapter of one Microsoft Graph mailbox.

    ``base_url`` is the Graph host (https://graph.microsoft.com, or an emulator's); requests go
    to ``{base_url}/v1.0/me/...``. Use exactly one instance per mailbox, so that its limit of
    ``max_concurrency`` requests in flight holds for everything that mailbox's sync does. An
    ``http`` client passed in stays the caller's to close; one made here is closed by `aclose`.
    """

    def __init__(
        self,
        base_url: str,
        token_source: TokenSource,
        *,
        http: httpx.AsyncClient | None = None,
        page_size: int = 50,
        max_concurrency: int = 4,
    ) -> None:
        self._client = GraphClient(
            base_url,
            token_source,
            http=http,
            page_size=page_size,
            max_concurrency=max_concurrency,
        )
        self._folders_per_page = max_concurrency

    async def list_folders(self) -> list[FolderRecord]:
        return (await self._read_folder_tree()).folder_records()

    async def full_sync_page(self, page_token: str | None, *, with_content: bool) -> ChangeBatch:
        if page_token is None:
            state = await self._read_folder_tree()
            folders: list[FolderRecord] | None = state.folder_records()
        else:
            state, folders = SyncState.decode(page_token, "page"), None
        pending = [sync for sync in state.folders.values() if not sync.done]
        pages = await gather_concurrently(
            self._first_round_page(state, sync, with_content)
            for sync in pending[: self._folders_per_page]
        )
        # A message moved between two folders read at the same time comes twice: only Graph
        # knows which copy is current.
        items, duplicated = _by_id(item for page in pages for item in page)
        upserts, gone = await message_records(
            self._client, items, duplicated, with_content=with_content
        )
        if any(not sync.done for sync in state.folders.values()):
            return ChangeBatch(
                upserts=upserts,
                deletions=gone,
                folders=folders,
                next_page_token=state.encode("page"),
                complete=False,
            )
        # A folder read early in the pass missed mail moved into it later, which apply's
        # end-of-pass sweep would then delete: the last page carries one round of every folder.
        listings = await self._restarted_folder_listings(state)
        caught_up = await self._round_of_every_folder(state, with_content)
        latest = {r.provider_id for r in caught_up.upserts} | set(caught_up.deletions)
        return ChangeBatch(
            upserts=[*(r for r in upserts if r.provider_id not in latest), *caught_up.upserts],
            deletions=list(
                dict.fromkeys([*(i for i in gone if i not in latest), *caught_up.deletions])
            ),
            folders=caught_up.folders if caught_up.folders is not None else folders,
            cursor=caught_up.cursor,
            folder_resyncs=[*listings, *caught_up.folder_resyncs],
        )

    async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
        return await self._round_of_every_folder(SyncState.decode(cursor, "cursor"), with_content)

    async def fetch_content(self, provider_id: str) -> MessageContent:
        item = await self._client.get_json(
            f"{message_path(provider_id)}?$select=body", "messages.get"
        )
        return message_content(item) or MessageContent(text_body=None, html_body=None)

    async def fetch_attachment(self, provider_id: str, attachment: AttachmentRecord) -> bytes:
        if attachment.provider_attachment_id is None:
            raise PermanentError("a Graph attachment needs its id", code="NO_ATTACHMENT_ID")
        return await self._client.get_bytes(
            f"{attachment_path(provider_id, attachment.provider_attachment_id)}/$value",
            "attachments.value",
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _round_of_every_folder(self, state: SyncState, with_content: bool) -> ChangeBatch:
        """The folder tree's round, then every folder's (M1), merged; advances ``state``."""
        tree_changed, vanished = await self._folder_tree_round(state)
        syncs = list(state.folders.values())
        rounds = await gather_concurrently(self._message_round(s, with_content) for s in syncs)
        for sync, folder_round in zip(syncs, rounds, strict=True):
            if folder_round is None:
                vanished.add(sync.folder.provider_id)
                del state.folders[sync.folder.provider_id]
        merged = merge_rounds([r for r in rounds if r is not None], vanished)
        upserts, gone = await message_records(
            self._client, list(merged.present.values()), merged.to_check, with_content=with_content
        )
        return ChangeBatch(
            upserts=upserts,
            deletions=gone,
            folders=state.folder_records() if tree_changed or vanished else None,
            cursor=state.encode("cursor"),
            folder_resyncs=merged.resyncs,
        )

    # -- folders ------------------------------------------------------------------------------

    async def _read_folder_tree(self) -> SyncState:
        well_known = await self._well_known_folders([ROOT_FOLDER, *WELL_KNOWN_ROLES])
        tree = await delta_round(self._client, None, FOLDER_TREE_DELTA)
        state = SyncState(tree.delta_link, well_known.pop(ROOT_FOLDER, None), well_known)
        # The inbox first: it is what a user opens while the initial sync is still running.
        items = sorted(tree.present.values(), key=lambda i: i["id"] != well_known.get("inbox"))
        for item in items:
            if item["id"] != state.root_id:
                state.folders[item["id"]] = FolderSync(self._folder(state, item))
        return state

    async def _folder_tree_round(self, state: SyncState) -> tuple[bool, set[str]]:
        """Apply the folder tree's round to ``state``: (anything changed, vanished folder ids)."""
        tree = await delta_round(self._client, state.tree_link, FOLDER_TREE_DELTA)
        vanished = set(tree.removed)
        if tree.restarted:
            vanished |= state.folders.keys() - tree.present.keys()
        new = [i for i in tree.present if i not in state.folders and i != state.root_id]
        missing = [name for name in WELL_KNOWN_ROLES if name not in state.well_known]
        if new and missing:
            # Outlook creates some well-known folders (Archive) only when first used.
            state.well_known.update(await self._well_known_folders(missing))
        for folder_id, item in tree.present.items():
            if folder_id == state.root_id:
                continue
            record = self._folder(state, item)
            if folder_id in state.folders:
                state.folders[folder_id].folder = record
            else:
                state.folders[folder_id] = FolderSync(record)
        for folder_id in vanished:
            state.folders.pop(folder_id, None)
        state.tree_link = tree.delta_link
        return bool(tree.present or vanished), vanished

    async def _well_known_folders(self, names: Iterable[str]) -> dict[str, str]:
        """Well-known name -> folder id, for the names this mailbox has (v1.0 has no
        wellKnownName property, so each is one GET /mailFolders/{name})."""

        async def folder_id(name: str) -> tuple[str, str | None]:
            try:
                body = await self._client.get_json(
                    f"{folder_path(name)}?$select=id", "mailFolders.get"
                )
            except ItemNotFound:
                return name, None
            return name, str(body["id"])

        found = await gather_concurrently(folder_id(name) for name in names)
        return {name: found_id for name, found_id in found if found_id is not None}

    def _folder(self, state: SyncState, item: dict[str, Any]) -> FolderRecord:
        role = next(
            (WELL_KNOWN_ROLES[n] for n, i in state.well_known.items() if i == item["id"]),
            FolderRole.CUSTOM,
        )
        return folder_record(item, role=role, root_id=state.root_id)

    # -- message delta ------------------------------------------------------------------------

    async def _first_round_page(
        self, state: SyncState, sync: FolderSync, with_content: bool
    ) -> list[dict[str, Any]]:
        """One page of a folder's first round during a full sync; advances ``sync``."""
        folder_id = sync.folder.provider_id
        start = message_delta_start(folder_id, with_content=with_content)
        if sync.link is None:
            sync.link = start
        try:
            try:
                page = await delta_page(self._client, sync.link)
            except DeltaGone:
                # Pages already stored may hold messages deleted since: list the folder at the end.
                sync.link, sync.restarted = start, True
                page = await delta_page(self._client, start)
        except ItemNotFound:
            del state.folders[folder_id]  # deleted since the tree was read
            return []
        except DeltaGone as again:
            raise TransientError("Graph refused a fresh delta round") from again
        sync.link = page.delta_link or page.next_link
        sync.done = page.delta_link is not None
        return page.present

    async def _restarted_folder_listings(self, state: SyncState) -> list[FolderResync]:
        restarted = [sync for sync in state.folders.values() if sync.restarted]
        listings = await gather_concurrently(
            folder_message_ids(self._client, s.folder.provider_id) for s in restarted
        )
        for sync in restarted:
            sync.restarted = False
        return [
            FolderResync(sync.folder.provider_id, ids)
            for sync, ids in zip(restarted, listings, strict=True)
        ]

    async def _message_round(self, sync: FolderSync, with_content: bool) -> FolderRound | None:
        """A folder's round for `changes_since`; None when the folder no longer exists."""
        folder_id = sync.folder.provider_id
        start = message_delta_start(folder_id, with_content=with_content)
        try:
            result = await delta_round(self._client, sync.link, start)
        except ItemNotFound:
            return None
        sync.link, sync.done = result.delta_link, True
        return FolderRound(folder_id, result)


def _by_id(items: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """Items with distinct ids, and the ids that came more than once (left out)."""
    unique: dict[str, dict[str, Any]] = {}
    duplicated: set[str] = set()
    for item in items:
        if item["id"] in unique:
            duplicated.add(item["id"])
        unique[item["id"]] = item
    return [item for i, item in unique.items() if i not in duplicated], duplicated
