"""The retention promises, enforced: what is past its time is deleted, and reported per table.

``purge(settings)`` runs four sweeps, each on the project clock (``app.clock``)::

    retention          per account with retention_days: messages dated before now - days, with
                       their bodies, attachments, label links and change-log rows; the search
                       index follows through the 0002_search triggers (SQLite: AFTER DELETE on
                       messages; PostgreSQL: ON DELETE CASCADE), and the threads they belonged
                       to are recomputed (deleted when left empty), in batches of BATCH, each one
                       transaction holding the account row as sync.apply does
    usage_log          rows older than settings.usage_log_retention_days
    terminated_owners  owners terminated more than settings.termination_grace_days ago: their
                       messages in batches, then the owner row, which cascades to every other
                       table (tokens, accounts, credentials, sync state, send keys, folders,
                       threads, change log, usage log, pending authorisations, exports), and
                       their export files
    exports            export jobs past expires_at and their files; files no job owns

``dry_run`` counts the same rows and deletes nothing. The worker runs the purge on a schedule
(``app.services.schedule``); ``inbox-api purge [--dry-run]`` runs it by hand.

This module must never delete a row of an owner or account the sweep is not about, never
delete a message younger than its account's retention, and never touch a provider.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Subquery
from tortoise.models import Model
from tortoise.transactions import in_transaction

from app import clock
from app.models import (
    Account,
    ApiToken,
    Attachment,
    ChangeLogEntry,
    Credential,
    ExportJob,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    Owner,
    PendingAuthorization,
    PushRegistration,
    SendKey,
    SyncState,
    Thread,
    UsageLogEntry,
)
from app.services.export import archive_id_of, exports_dir, remove_archive_files
from app.services.thread_summaries import recompute_threads
from app.settings import Settings

BATCH = 500
SEARCH_TABLE = "message_search"
# A partial archive younger than this may belong to a job being created right now.
ORPHAN_FILE_AGE_SECONDS = 3600.0

SECTIONS = {
    "retention": "cached mail past each account's retention",
    "usage_log": "usage log past its retention",
    "terminated_owners": "owners past their termination grace period",
    "exports": "expired exports",
}

# Every table an owner has rows in, and the path from each to the owner.
_OWNER_ROWS: tuple[tuple[type[Model], str], ...] = (
    (Owner, "id"),
    (ApiToken, "owner_id"),
    (Account, "owner_id"),
    (Credential, "account__owner_id"),
    (SyncState, "account__owner_id"),
    (SendKey, "account__owner_id"),
    (PushRegistration, "account__owner_id"),
    (Folder, "account__owner_id"),
    (Thread, "account__owner_id"),
    (Message, "account__owner_id"),
    (MessageBody, "message__account__owner_id"),
    (MessageLabel, "message__account__owner_id"),
    (Attachment, "message__account__owner_id"),
    (ChangeLogEntry, "account__owner_id"),
    (UsageLogEntry, "owner_id"),
    (PendingAuthorization, "owner_id"),
    (ExportJob, "owner_id"),
)
# What goes with a message, and the path from each to it.
_MESSAGE_ROWS: tuple[tuple[type[Model], str], ...] = (
    (MessageBody, "message_id"),
    (MessageLabel, "message_id"),
    (Attachment, "message_id"),
)


@dataclass(slots=True)
class PurgeReport:
    """Rows (and files) deleted, or that would be with ``dry_run``, per sweep and table."""

    dry_run: bool
    sections: dict[str, Counter[str]] = field(
        default_factory=lambda: {name: Counter() for name in SECTIONS}
    )

    def total(self, table: str) -> int:
        return sum(counts[table] for counts in self.sections.values())


async def purge(settings: Settings, *, dry_run: bool = False) -> PurgeReport:
    """Run every sweep once; with ``dry_run`` only count."""
    report = PurgeReport(dry_run)
    report.sections["retention"] = await purge_expired_messages(dry_run=dry_run)
    report.sections["usage_log"] = await purge_usage_log(
        settings.usage_log_retention_days, dry_run=dry_run
    )
    report.sections["terminated_owners"] = await purge_terminated_owners(settings, dry_run=dry_run)
    report.sections["exports"] = await purge_expired_exports(settings, dry_run=dry_run)
    return report


# -- retention of cached mail ---------------------------------------------------------------


async def purge_expired_messages(*, dry_run: bool = False) -> Counter[str]:
    """Apply every account's ``retention_days`` to its cached messages."""
    counts: Counter[str] = Counter()
    now = clock.now()
    policies = await Account.filter(retention_days__isnull=False).values_list(
        "id", "retention_days"
    )
    for account_id, days in policies:
        counts += await purge_account_messages(
            int(account_id), now - timedelta(days=int(days)), dry_run=dry_run
        )
    return counts


async def purge_account_messages(
    account_id: int, cutoff: datetime, *, dry_run: bool = False
) -> Counter[str]:
    """Delete the account's messages dated before ``cutoff`` and everything that hangs on them."""
    counts: Counter[str] = Counter()
    if dry_run:
        counts["threads"] = await _threads_left_empty(account_id, cutoff)
    after = 0
    while True:
        async with in_transaction() as conn:
            if not dry_run:
                # The lock sync.apply takes: a batch and a purge of one account never interleave.
                await (
                    Account.filter(id=account_id)
                    .using_db(conn)
                    .select_for_update(of=("accounts",), no_key=True)
                    .first()
                )
            rows = await (
                Message.filter(account_id=account_id, date__lt=cutoff, id__gt=after)
                .using_db(conn)
                .order_by("id")
                .limit(BATCH)
                .values_list("id", "thread_id")
            )
            if not rows:
                break
            ids = [int(message_id) for message_id, _ in rows]
            counts += await _count_message_rows(conn, account_id, ids)
            if not dry_run:
                await _delete_messages(conn, account_id, ids)
                recomputed = await recompute_threads(conn, (thread for _, thread in rows))
                counts["threads"] += recomputed.deleted
            after = ids[-1]
    return _nonzero(counts)


async def _count_message_rows(
    conn: BaseDBAsyncClient, account_id: int, ids: Sequence[int]
) -> Counter[str]:
    counts: Counter[str] = Counter({"messages": len(ids)})
    for model, path in _MESSAGE_ROWS:
        counts[_table(model)] = await model.filter(**{f"{path}__in": ids}).using_db(conn).count()
    counts[_table(ChangeLogEntry)] = await (
        ChangeLogEntry.filter(account_id=account_id, message_id__in=ids).using_db(conn).count()
    )
    counts[SEARCH_TABLE] = await _count_search_entries(conn, ids)
    return counts


async def _delete_messages(conn: BaseDBAsyncClient, account_id: int, ids: Sequence[int]) -> None:
    # The change log has no foreign key to messages (deletions stay visible), so its rows about
    # these messages go explicitly; bodies, attachments, links and search entries cascade.
    await ChangeLogEntry.filter(account_id=account_id, message_id__in=ids).using_db(conn).delete()
    await Message.filter(id__in=ids).using_db(conn).delete()


async def _threads_left_empty(account_id: int, cutoff: datetime) -> int:
    """Threads of the account with a message before ``cutoff`` and none at or after it."""
    keeps = Message.filter(account_id=account_id, date__gte=cutoff, thread_id__isnull=False).values(
        "thread_id"
    )
    return (
        await Thread.filter(account_id=account_id, messages__date__lt=cutoff)
        .exclude(id__in=Subquery(keeps))
        .distinct()
        .count()
    )


async def _count_search_entries(conn: BaseDBAsyncClient, ids: Sequence[int]) -> int:
    postgres = conn.capabilities.dialect == "postgres"
    column = "message_id" if postgres else "rowid"
    marks = ", ".join(f"${n}" if postgres else "?" for n in range(1, len(ids) + 1))
    sql = f"SELECT count(*) FROM {SEARCH_TABLE} WHERE {column} IN ({marks})"  # noqa: S608 (constant text; values are parameters)
    _, rows = await conn.execute_query(sql, list(ids))
    return int(_first_value(rows))


def _first_value(rows: Any) -> Any:
    # sqlite3.Row and asyncpg.Record both index by position.
    return rows[0][0]


# -- the usage log --------------------------------------------------------------------------


async def purge_usage_log(retention_days: int, *, dry_run: bool = False) -> Counter[str]:
    """Delete usage rows older than ``retention_days``."""
    expired = UsageLogEntry.filter(at__lt=clock.now() - timedelta(days=retention_days))
    removed = await expired.count() if dry_run else await expired.delete()
    return _nonzero(Counter({_table(UsageLogEntry): removed}))


# -- terminated owners ----------------------------------------------------------------------


async def purge_terminated_owners(settings: Settings, *, dry_run: bool = False) -> Counter[str]:
    """Delete every row of each owner terminated more than the grace period ago."""
    counts: Counter[str] = Counter()
    deadline = clock.now() - timedelta(days=settings.termination_grace_days)
    owners = await Owner.filter(terminated_at__lte=deadline).values_list("id", flat=True)
    for owner_id in _ints(owners):
        counts += await purge_owner(settings, owner_id, dry_run=dry_run)
    return counts


async def purge_owner(settings: Settings, owner_id: int, *, dry_run: bool = False) -> Counter[str]:
    """Count, then (unless ``dry_run``) delete every row and export file of one owner."""
    counts: Counter[str] = Counter()
    for model, path in _OWNER_ROWS:
        counts[_table(model)] = await model.filter(**{path: owner_id}).count()
    account_ids = _ints(await Account.filter(owner_id=owner_id).values_list("id", flat=True))
    archive_ids = [
        str(a)
        for a in await ExportJob.filter(owner_id=owner_id).values_list("archive_id", flat=True)
    ]
    for account_id in account_ids:
        counts[SEARCH_TABLE] += await _erase_messages_in_batches(account_id, dry_run=dry_run)
    if not dry_run:
        await Owner.filter(id=owner_id).delete()
        counts["export_files"] = remove_archive_files(settings, archive_ids)
    else:
        counts["export_files"] = _existing_files(settings, archive_ids)
    return _nonzero(counts)


async def _erase_messages_in_batches(account_id: int, *, dry_run: bool) -> int:
    """Delete every message of the account (unless ``dry_run``) a batch at a time, so no single
    statement cascades over a whole mailbox; returns how many search entries they had."""
    found = 0
    after = 0
    while True:
        async with in_transaction() as conn:
            ids = _ints(
                await Message.filter(account_id=account_id, id__gt=after)
                .using_db(conn)
                .order_by("id")
                .limit(BATCH)
                .values_list("id", flat=True)
            )
            if not ids:
                return found
            found += await _count_search_entries(conn, ids)
            if not dry_run:
                await Message.filter(id__in=ids).using_db(conn).delete()
            after = ids[-1]


# -- exports --------------------------------------------------------------------------------


async def purge_expired_exports(settings: Settings, *, dry_run: bool = False) -> Counter[str]:
    """Delete export jobs past their expiry with their files, and files no job owns."""
    expired = ExportJob.filter(expires_at__lte=clock.now())
    archive_ids = [str(a) for a in await expired.values_list("archive_id", flat=True)]
    counts: Counter[str] = Counter({_table(ExportJob): len(archive_ids)})
    if dry_run:
        counts["export_files"] = _existing_files(settings, archive_ids)
    else:
        await ExportJob.filter(archive_id__in=archive_ids).delete()
        counts["export_files"] = remove_archive_files(settings, archive_ids)
    counts["export_files"] += await _purge_orphan_files(settings, dry_run=dry_run)
    return _nonzero(counts)


async def _purge_orphan_files(settings: Settings, *, dry_run: bool) -> int:
    files = [path for path in exports_dir(settings).iterdir() if path.is_file()]
    if not files:
        return 0
    known = {str(a) for a in await ExportJob.all().values_list("archive_id", flat=True)}
    stale_before = time.time() - ORPHAN_FILE_AGE_SECONDS
    orphans = [
        path
        for path in files
        if archive_id_of(path) not in known and path.stat().st_mtime < stale_before
    ]
    if not dry_run:
        for path in orphans:
            path.unlink(missing_ok=True)
    return len(orphans)


def _existing_files(settings: Settings, archive_ids: Sequence[str]) -> int:
    wanted = set(archive_ids)
    return sum(1 for path in exports_dir(settings).iterdir() if archive_id_of(path) in wanted)


def _ints(values: Iterable[Any]) -> list[int]:
    return [int(value) for value in values]


def _table(model: type[Model]) -> str:
    return str(model._meta.db_table)


def _nonzero(counts: Counter[str]) -> Counter[str]:
    return Counter({table: n for table, n in counts.items() if n})
