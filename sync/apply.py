"""Apply one ``ChangeBatch`` to one account's cache: one transaction, idempotent, in bulk.

``apply_batch`` writes everything a batch says, together with where the sync stands (the cursor
or the next full-sync page token), in ONE transaction, so a crash leaves either all of it or none
of it, and the next run repeats the batch. Repeating it is harmless: every record carries the
latest full state (records.py), rows are keyed by (account, provider id), and a row that already
holds what a record says is not written again and gets no change-log row. Inside the
transaction, in this order::

    account row locked; gone or owner terminated ........... AccountGone, nothing written
    SyncState: cursor / page token / phase (lease-fenced) ... LeaseLost, nothing written
    folders (labels) upserted when the batch lists them
    moves: a message deleted and added under a new provider id with the same Message-ID
              header in this batch was moved; its row takes the new id (its API id survives)
    threads created for new thread ids
    messages: upserts (retention applied) and FlagsRecords as ONE upsert statement;
              a FlagsRecord for a message the cache does not hold is ignored (it never creates)
    label links replaced, bodies stored (only with the account's cache_bodies),
    attachments replaced (only when the record knows them)
    deletions, then FolderResync, then (last page of a full sync) the sweep: see below
    threads touched recomputed (subject, snippet, participants, counts); empty ones removed
    folders absent from a complete folder list removed
    one ChangeLogEntry per message added, changed or deleted

After the commit it publishes ``AccountChanged`` with the highest change-log id (ids only).

Deleted mail during a full sync: a ``FullSyncPass`` marks one full sync with the time it started
(kept in ``SyncState.full_sync_page_token`` in front of the adapter's token, so a worker that
resumes a killed pass keeps the mark). Every message a page lists is written or, when unchanged,
touched, so its ``updated_at`` is at least that mark; on the last page every cached message of
the account with an older ``updated_at`` was not listed, so the provider no longer has it, and it
is deleted. The mark and ``updated_at`` come from the same clock, ``tortoise.timezone.now`` (the
system's UTC time, which Tortoise's ``auto_now`` uses too for any other writer), not
``app.clock``, which tests move; worker hosts must keep their clocks in step (NTP).

Cost: a few statements per batch whatever its size (bulk inserts and upserts, IN lists), never a
statement per message. This module never calls a provider, never sleeps or retries, never logs
message content, and never decides what an error means (``sync.engine`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import timezone
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app import clock
from app.events import AccountChanged, EventBus
from app.models import (
    Account,
    Attachment,
    ChangeLogEntry,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    SyncState,
    Thread,
)
from app.services.thread_summaries import chunks, recompute_threads
from app.types import ChangeKind, SyncPhase
from sync.providers.records import (
    Address,
    ChangeBatch,
    FlagsRecord,
    FolderRecord,
    MessageRecord,
)

# Never in an ISO 8601 time, so the adapter's token after it may hold anything.
_PASS_SEPARATOR = "|"  # noqa: S105 (a separator, not a password)

# Message columns a record decides; a cached row equal on all of them is not written again.
MESSAGE_COLUMNS = (
    "thread_id",
    "message_id_header",
    "in_reply_to",
    "references",
    "subject",
    "from_addresses",
    "to_addresses",
    "cc_addresses",
    "bcc_addresses",
    "reply_to_addresses",
    "date",
    "snippet",
    "size",
    "has_attachments",
    "unread",
    "starred",
    "draft",
    "label_ids",
    "parse_error",
)
_THREAD_STUB = (
    "account_id",
    "provider_id",
    "subject",
    "snippet",
    "participants",
    "message_count",
    "unread_count",
)
_JSON_COLUMNS = frozenset(
    {
        "references",
        "from_addresses",
        "to_addresses",
        "cc_addresses",
        "bcc_addresses",
        "reply_to_addresses",
        "label_ids",
    }
)


class AccountGone(Exception):
    """The account was deleted, or its owner terminated, while the batch was on its way."""


class LeaseLost(Exception):
    """Another worker holds the account's lease now; this one must not write."""


@dataclass(frozen=True, slots=True)
class FullSyncPass:
    """One full sync of an account, from its first page to its last, marked by its start."""

    started_at: datetime

    @classmethod
    def begin(cls) -> FullSyncPass:
        return cls(timezone.now())

    def page_token(self, adapter_token: str) -> str:
        """What ``SyncState.full_sync_page_token`` holds between two pages of this pass."""
        return f"{self.started_at.isoformat()}{_PASS_SEPARATOR}{adapter_token}"

    @classmethod
    def resume(cls, stored: str) -> tuple[FullSyncPass, str] | None:
        """The pass and adapter token a stored page token names; None if it is unreadable."""
        started, separator, adapter_token = stored.partition(_PASS_SEPARATOR)
        try:
            started_at = datetime.fromisoformat(started)
        except ValueError:
            return None
        if not separator or not adapter_token or started_at.tzinfo is None:
            return None
        return cls(started_at), adapter_token


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one batch did to the cache."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    skipped_by_retention: int = 0
    change_id: int | None = None  # highest change-log id written, None if nothing changed


async def apply_batch(
    account_id: int,
    batch: ChangeBatch,
    *,
    events: EventBus,
    full_sync: FullSyncPass | None = None,
    lease_owner: str | None = None,
) -> ApplyResult:
    """Apply ``batch`` and store its position in one transaction, then publish the change.

    ``full_sync`` says the batch is a page of that pass (its ``next_page_token`` is stored, and
    the last page sweeps what the pass did not list). With ``lease_owner`` nothing is written
    unless that worker still holds the account's lease (``LeaseLost``).
    """
    async with in_transaction() as conn:
        account = await _locked_account(conn, account_id)
        await _store_position(conn, account_id, batch, full_sync, lease_owner)
        result = await _CacheWriter(conn, account, full_sync).apply(batch)
    if result.change_id is not None:
        await events.publish(AccountChanged(account.owner_id, account_id, result.change_id))
    return result


async def folders_unknown_to_cache(account_id: int, batch: ChangeBatch) -> set[str]:
    """Label ids the batch's messages carry that the cache has no folder for (and the batch
    lists no folders): a label created since the folders were last listed, or a flag label."""
    if batch.folders is not None:
        return set()
    labels = {label for record in batch.upserts for label in record.label_ids}
    labels.update(label for flags in batch.flag_updates for label in flags.label_ids)
    if not labels:
        return set()
    known = await Folder.filter(account_id=account_id).values_list("provider_id", flat=True)
    return labels.difference(str(provider_id) for provider_id in known)


async def _locked_account(conn: BaseDBAsyncClient, account_id: int) -> Account:
    query = Account.filter(id=account_id, owner__terminated_at__isnull=True).using_db(conn)
    # Blocks a concurrent DELETE of the account until this batch commits (or sees it gone),
    # so an in-flight batch never recreates rows of a deleted account.
    account = await query.select_for_update(of=("accounts",), no_key=True).first()
    if account is None:
        raise AccountGone(f"account {account_id} is gone")
    return account


async def _store_position(
    conn: BaseDBAsyncClient,
    account_id: int,
    batch: ChangeBatch,
    full_sync: FullSyncPass | None,
    lease_owner: str | None,
) -> None:
    position: dict[str, Any] = {}
    if full_sync is not None:
        last_page = batch.next_page_token is None
        position["full_sync_page_token"] = (
            None if last_page else full_sync.page_token(str(batch.next_page_token))
        )
        position["phase"] = SyncPhase.INCREMENTAL if last_page else SyncPhase.INITIAL
    if batch.cursor is not None:
        position["cursor"] = batch.cursor
        position["phase"] = SyncPhase.INCREMENTAL
    query = SyncState.filter(account_id=account_id).using_db(conn)
    if lease_owner is not None:
        # The fence: a worker whose lease was taken over writes nothing.
        updated = await query.filter(lease_owner=lease_owner).update(
            **(position or {"lease_owner": lease_owner})
        )
        if not updated:
            raise LeaseLost(f"account {account_id} is leased by another worker")
    elif position and not await query.update(**position):
        await SyncState.create(account_id=account_id, using_db=conn, **position)


class _CacheWriter:
    """The writes of one batch for one account, inside the caller's transaction."""

    def __init__(
        self, conn: BaseDBAsyncClient, account: Account, full_sync: FullSyncPass | None
    ) -> None:
        self._conn = conn
        self._account_id = account.id
        self._cache_bodies = account.cache_bodies
        self._full_sync = full_sync
        self._cutoff = (
            None
            if account.retention_days is None
            else clock.now() - timedelta(days=account.retention_days)
        )
        self._touched_threads: set[int] = set()
        self._changes: list[tuple[Any, ...]] = []

    async def apply(self, batch: ChangeBatch) -> ApplyResult:
        if batch.folders is not None:
            await self._upsert_folders(batch.folders)
        folders = await self._folder_ids()
        upserts = {record.provider_id: record for record in batch.upserts}  # the last one wins
        kept = {
            pid: record
            for pid, record in upserts.items()
            if self._cutoff is None or _utc(record.date) >= self._cutoff
        }
        # Within one batch an upsert is the newer state: it was fetched after the history
        # that produced the FlagsRecord.
        flags = {f.provider_id: f for f in batch.flag_updates if f.provider_id not in upserts}
        cached = await self._cached_messages([*kept, *flags, *batch.deletions])
        deletions = await self._keep_moved(kept, batch.deletions, cached)

        added, changed = await self._write_messages(kept, flags, cached, folders)
        victims = {cached[pid]["id"]: cached[pid] for pid in deletions if pid in cached}
        for resync in batch.folder_resyncs:
            folder_id = folders.get(resync.folder_provider_id)
            if folder_id is not None:
                for row in await self._filed_under(folder_id):
                    if row["provider_id"] not in resync.provider_ids:
                        victims.setdefault(row["id"], row)
        if self._full_sync is not None and batch.next_page_token is None:
            for row in await self._not_listed_since(self._full_sync.started_at):
                victims.setdefault(row["id"], row)
        await self._delete_messages(list(victims.values()))
        await recompute_threads(self._conn, self._touched_threads)
        if batch.folders is not None:
            await self._delete_folders_not_in(batch.folders)
        change_id = await self._write_change_log()
        return ApplyResult(
            added=added,
            changed=changed,
            deleted=len(victims),
            skipped_by_retention=len(upserts) - len(kept),
            change_id=change_id,
        )

    # -- folders --------------------------------------------------------------------------

    async def _upsert_folders(self, records: Sequence[FolderRecord]) -> None:
        unique = {record.provider_id: record for record in records}
        rows = [
            Folder(
                account_id=self._account_id,
                provider_id=record.provider_id,
                name=record.name,
                role=record.role,
                parent_provider_id=record.parent_provider_id,
                total_count=record.total_count,
                unread_count=record.unread_count,
            )
            for record in unique.values()
        ]
        if rows:
            await Folder.bulk_create(
                rows,
                on_conflict=("account_id", "provider_id"),
                update_fields=(
                    "name",
                    "role",
                    "parent_provider_id",
                    "total_count",
                    "unread_count",
                ),
                using_db=self._conn,
            )

    async def _folder_ids(self) -> dict[str, int]:
        rows = await (
            Folder.filter(account_id=self._account_id)
            .using_db(self._conn)
            .values_list("provider_id", "id")
        )
        return {str(provider_id): int(folder_id) for provider_id, folder_id in rows}

    async def _delete_folders_not_in(self, records: Sequence[FolderRecord]) -> None:
        # A folder list is always complete (adapter.py), so a folder it lacks is gone; its
        # label links go with it (ON DELETE CASCADE).
        await (
            Folder.filter(account_id=self._account_id)
            .exclude(provider_id__in=[record.provider_id for record in records])
            .using_db(self._conn)
            .delete()
        )

    # -- messages -------------------------------------------------------------------------

    async def _cached_messages(self, provider_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(sorted(set(provider_ids))):
            rows = await (
                Message.filter(account_id=self._account_id, provider_id__in=chunk)
                .using_db(self._conn)
                .values("id", "provider_id", *MESSAGE_COLUMNS)
            )
            found.update((row["provider_id"], row) for row in rows)
        return found

    async def _keep_moved(
        self,
        records: dict[str, MessageRecord],
        deletions: Sequence[str],
        cached: dict[str, dict[str, Any]],
    ) -> list[str]:
        """A message the batch deletes under one provider id and adds under a new one with the
        same Message-ID header was moved (IMAP: another client's MOVE is an expunge and a new
        UID): its cached row takes the new provider id, so its API id survives, and the upsert
        then changes it. Updates ``cached`` in place; returns the deletions left."""
        gone: dict[str, list[str]] = {}
        for pid in deletions:
            row = cached.get(pid)
            if row is not None and row["message_id_header"] and pid not in records:
                gone.setdefault(row["message_id_header"], []).append(pid)
        moved: dict[str, str] = {}
        for pid, record in records.items():
            candidates = gone.get(record.message_id_header or "")
            if candidates and pid not in cached:
                moved[candidates.pop(0)] = pid
        if not moved:
            return list(deletions)
        renamed = [Message(id=cached[old]["id"], provider_id=new) for old, new in moved.items()]
        await Message.bulk_update(renamed, fields=("provider_id",), using_db=self._conn)
        for old, new in moved.items():
            cached[new] = {**cached.pop(old), "provider_id": new}
        return [pid for pid in deletions if pid not in moved]

    async def _write_messages(
        self,
        records: dict[str, MessageRecord],
        flags: dict[str, FlagsRecord],
        cached: dict[str, dict[str, Any]],
        folders: dict[str, int],
    ) -> tuple[int, int]:
        """Upsert what differs from the cache; returns (added, changed)."""
        threads = await self._thread_ids(
            {record.thread_provider_id or pid for pid, record in records.items()}
        )
        wanted: dict[str, dict[str, Any]] = {}
        for pid, record in records.items():
            thread = threads[record.thread_provider_id or pid]
            wanted[pid] = _message_columns(record, thread, cached.get(pid))
        for pid, flag in flags.items():
            if pid in cached:
                wanted[pid] = {
                    **_cached_columns(cached[pid]),
                    "label_ids": list(flag.label_ids),
                    "unread": flag.unread,
                    "starred": flag.starred,
                }
        new = [pid for pid in wanted if pid not in cached]
        changed = [
            pid for pid in wanted if pid in cached and wanted[pid] != _cached_columns(cached[pid])
        ]
        unchanged = [pid for pid in records if pid in cached and pid not in changed]

        written = [*new, *changed]
        now = timezone.now()
        await self._insert(
            "messages",
            ("account_id", "provider_id", "created_at", "updated_at", *MESSAGE_COLUMNS),
            [(self._account_id, pid, now, now, *_message_values(wanted[pid])) for pid in written],
            on_conflict=("account_id", "provider_id"),
            update=("updated_at", *MESSAGE_COLUMNS),
        )
        if self._full_sync is not None and unchanged:
            # Listed by the pass: mark it seen so the sweep on the last page keeps it.
            seen = [cached[pid]["id"] for pid in unchanged]
            for chunk in chunks(seen):
                await Message.filter(id__in=chunk).using_db(self._conn).update(updated_at=now)
        ids = {pid: cached[pid]["id"] for pid in changed}
        ids.update(await self._ids(Message, new))

        await self._replace_labels(
            ids, wanted, replaced=[ids[pid] for pid in changed], folders=folders
        )
        await self._store_bodies(records, ids, unchanged, cached)
        await self._replace_attachments(records, ids, changed)

        for pid in changed:
            self._touched_threads.add(cached[pid]["thread_id"])
        self._touched_threads.update(wanted[pid]["thread_id"] for pid in written)
        self._log(ChangeKind.MESSAGE_ADDED, ((ids[pid], pid) for pid in new))
        self._log(ChangeKind.MESSAGE_CHANGED, ((ids[pid], pid) for pid in changed))
        return len(new), len(changed)

    async def _thread_ids(self, provider_ids: set[str]) -> dict[str, int]:
        if not provider_ids:
            return {}
        found = await self._ids(Thread, provider_ids)
        missing = provider_ids - found.keys()
        if missing:
            await self._insert(
                "threads",
                # Every NOT NULL column: the models' defaults live in Python, not in the schema.
                _THREAD_STUB,
                [(self._account_id, pid, "", "", "[]", 0, 0) for pid in sorted(missing)],
                on_conflict=("account_id", "provider_id"),
            )
            found.update(await self._ids(Thread, missing))
        return found

    async def _ids(
        self, model: type[Message] | type[Thread], provider_ids: Iterable[str]
    ) -> dict[str, int]:
        """Cache ids of the account's rows of ``model`` with these provider ids."""
        found: dict[str, int] = {}
        for chunk in chunks(sorted(set(provider_ids))):
            rows = await (
                model.filter(account_id=self._account_id, provider_id__in=chunk)
                .using_db(self._conn)
                .values_list("provider_id", "id")
            )
            found.update((str(pid), int(row_id)) for pid, row_id in rows)
        return found

    async def _replace_labels(
        self,
        ids: dict[str, int],
        wanted: dict[str, dict[str, Any]],
        *,
        replaced: Sequence[int],
        folders: dict[str, int],
    ) -> None:
        for chunk in chunks(replaced):
            await MessageLabel.filter(message_id__in=chunk).using_db(self._conn).delete()
        # Ids that are no folder (Gmail's UNREAD) stay in Message.label_ids only.
        await self._insert(
            "message_labels",
            ("message_id", "folder_id"),
            [
                (message_id, folders[label])
                for pid, message_id in ids.items()
                for label in dict.fromkeys(wanted[pid]["label_ids"])
                if label in folders
            ],
            on_conflict=("folder_id", "message_id"),
        )

    async def _store_bodies(
        self,
        records: dict[str, MessageRecord],
        ids: dict[str, int],
        unchanged: Sequence[str],
        cached: dict[str, dict[str, Any]],
    ) -> None:
        if not self._cache_bodies:
            return
        # An unchanged message may still lack its body (first synced without content).
        unchanged_ids = {
            cached[pid]["id"]: pid for pid in unchanged if records[pid].content is not None
        }
        stored: set[int] = set()
        for chunk in chunks(list(unchanged_ids)):
            rows = await (
                MessageBody.filter(message_id__in=chunk).using_db(self._conn).values("message_id")
            )
            stored.update(row["message_id"] for row in rows)
        targets = dict(ids)
        targets.update((pid, mid) for mid, pid in unchanged_ids.items() if mid not in stored)
        body_columns = ("text_body", "html_body", "headers", "raw_mime")
        await self._insert(
            "message_bodies",
            ("message_id", *body_columns),
            [
                (
                    message_id,
                    content.text_body,
                    content.html_body,
                    _json([list(header) for header in content.headers]),
                    content.raw_mime,
                )
                for pid, message_id in targets.items()
                if pid in records and (content := records[pid].content) is not None
            ],
            on_conflict=("message_id",),
            update=body_columns,
        )

    async def _replace_attachments(
        self, records: dict[str, MessageRecord], ids: dict[str, int], changed: Sequence[str]
    ) -> None:
        known = [pid for pid in ids if pid in records and records[pid].attachments_known]
        stale = [ids[pid] for pid in changed if pid in known]
        for chunk in chunks(stale):
            await Attachment.filter(message_id__in=chunk).using_db(self._conn).delete()
        await self._insert(
            "attachments",
            (
                "message_id",
                "provider_attachment_id",
                "part_id",
                "filename",
                "content_type",
                "size",
                "content_id",
                "inline",
            ),
            [
                (
                    ids[pid],
                    attachment.provider_attachment_id,
                    attachment.part_id,
                    attachment.filename,
                    attachment.content_type,
                    attachment.size,
                    attachment.content_id,
                    attachment.inline,
                )
                for pid in known
                for attachment in records[pid].attachments
            ],
        )

    # -- deletions ------------------------------------------------------------------------

    async def _filed_under(self, folder_id: int) -> list[dict[str, Any]]:
        return await (
            Message.filter(account_id=self._account_id, label_links__folder_id=folder_id)
            .using_db(self._conn)
            .values("id", "provider_id", "thread_id")
        )

    async def _not_listed_since(self, started_at: datetime) -> list[dict[str, Any]]:
        return await (
            Message.filter(account_id=self._account_id, updated_at__lt=started_at)
            .using_db(self._conn)
            .values("id", "provider_id", "thread_id")
        )

    async def _delete_messages(self, rows: Sequence[dict[str, Any]]) -> None:
        # Links, body and attachments go with the message (ON DELETE CASCADE).
        for chunk in chunks([row["id"] for row in rows]):
            await Message.filter(id__in=chunk).using_db(self._conn).delete()
        self._touched_threads.update(row["thread_id"] for row in rows)
        self._log(ChangeKind.MESSAGE_DELETED, ((row["id"], row["provider_id"]) for row in rows))

    # -- the change log -------------------------------------------------------------------

    def _log(self, kind: ChangeKind, messages: Iterable[tuple[int, str]]) -> None:
        self._changes.extend(
            (self._account_id, kind.value, message_id, pid, "{}", timezone.now())
            for message_id, pid in messages
        )

    async def _write_change_log(self) -> int | None:
        if not self._changes:
            return None
        await self._insert(
            "change_log",
            ("account_id", "kind", "message_id", "provider_id", "detail", "created_at"),
            self._changes,
        )
        newest = await (
            ChangeLogEntry.filter(account_id=self._account_id)
            .using_db(self._conn)
            .order_by("-id")
            .first()
            .values("id")
        )
        return None if newest is None else int(newest["id"])

    async def _insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        on_conflict: Sequence[str] = (),
        update: Sequence[str] = (),
    ) -> None:
        """One prepared INSERT for all ``rows`` (values ready to bind), upserting ``update``
        on a conflict over ``on_conflict``, or skipping the row when ``update`` is empty.

        Written out rather than through ``Model.bulk_create``: building a model object and
        converting each field of it took half of apply's time, for rows this module fully
        controls (the column names are constants here)."""
        if not rows:
            return
        postgres = self._conn.capabilities.dialect == "postgres"
        marks = ", ".join(f"${n}" if postgres else "?" for n in range(1, len(columns) + 1))
        sql = f"INSERT INTO {_names(table)} ({_names(*columns)}) VALUES ({marks})"  # noqa: S608 (constant names)
        if on_conflict and update:
            assignments = ", ".join(f"{_names(c)} = EXCLUDED.{_names(c)}" for c in update)
            sql += f" ON CONFLICT ({_names(*on_conflict)}) DO UPDATE SET {assignments}"
        elif on_conflict:
            sql += f" ON CONFLICT ({_names(*on_conflict)}) DO NOTHING"
        await self._conn.execute_many(sql, [list(row) for row in rows])


def _message_columns(
    record: MessageRecord, thread_id: int, cached: dict[str, Any] | None
) -> dict[str, Any]:
    if record.attachments_known:
        has_attachments = bool(record.attachments)
    else:
        # Unknown (metadata fetch): keep what an earlier full fetch found.
        has_attachments = bool(cached and cached["has_attachments"])
    return {
        "thread_id": thread_id,
        "message_id_header": record.message_id_header,
        "in_reply_to": record.in_reply_to,
        "references": list(record.references),
        "subject": record.subject,
        "from_addresses": _addresses(record.from_addresses),
        "to_addresses": _addresses(record.to_addresses),
        "cc_addresses": _addresses(record.cc_addresses),
        "bcc_addresses": _addresses(record.bcc_addresses),
        "reply_to_addresses": _addresses(record.reply_to_addresses),
        "date": _utc(record.date),
        "snippet": record.snippet,
        "size": record.size,
        "has_attachments": has_attachments,
        "unread": record.unread,
        "starred": record.starred,
        "draft": record.draft,
        "label_ids": list(record.label_ids),
        "parse_error": record.parse_error,
    }


def _message_values(columns: dict[str, Any]) -> tuple[Any, ...]:
    """``MESSAGE_COLUMNS`` of a wanted row, ready to bind."""
    return tuple(
        _json(columns[name]) if name in _JSON_COLUMNS else columns[name] for name in MESSAGE_COLUMNS
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _names(*names: str) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _cached_columns(row: dict[str, Any]) -> dict[str, Any]:
    return {column: row[column] for column in MESSAGE_COLUMNS}


def _addresses(addresses: Sequence[Address]) -> list[dict[str, str]]:
    return [{"name": address.name, "email": address.email} for address in addresses]


def _utc(moment: datetime) -> datetime:
    # One offset for every stored date, so SQLite's text comparisons sort them correctly.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
