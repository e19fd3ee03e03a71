"""What the privacy tests count: every row an owner or an account has, table by table, the
search index included; and an owner filled with one of everything.

``owner_rows`` is written independently of ``app.services.purge`` (a table the purge forgets
must show up here), and ``test_every_table_is_counted`` makes a new table fail until it is
added.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from tortoise import connections

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
from app.services.export import archive_path
from app.settings import Settings
from app.types import ChangeKind, ExportStatus, Provider
from sync.providers.records import Address, ChangeBatch, MessageContent, MessageRecord
from tests.factories import make_account, make_folder, make_message, make_thread

SEARCH_TABLE = "message_search"


def _search_column() -> str:
    dialect = connections.get("default").capabilities.dialect
    return "message_id" if dialect == "postgres" else "rowid"


async def search_entries(message_ids: Sequence[int]) -> set[int]:
    """The ids among ``message_ids`` that have a search index entry."""
    if not message_ids:
        return set()
    column = _search_column()
    ids = ", ".join(str(int(i)) for i in message_ids)
    _, rows = await connections.get("default").execute_query(
        f"SELECT {column} FROM {SEARCH_TABLE} WHERE {column} IN ({ids})"
    )
    return {int(row[0]) for row in rows}


async def _search_rows_of_owner(owner_id: int) -> int:
    column = _search_column()
    _, rows = await connections.get("default").execute_query(
        f"SELECT count(*) FROM {SEARCH_TABLE} WHERE {column} IN (SELECT m.id FROM messages m "
        f"JOIN accounts a ON a.id = m.account_id WHERE a.owner_id = {int(owner_id)})"
    )
    return int(rows[0][0])


Count = Callable[[int], Awaitable[int]]

OWNER_TABLES: dict[str, Count] = {
    "owners": lambda o: Owner.filter(id=o).count(),
    "api_tokens": lambda o: ApiToken.filter(owner_id=o).count(),
    "accounts": lambda o: Account.filter(owner_id=o).count(),
    "credentials": lambda o: Credential.filter(account__owner_id=o).count(),
    "oauth_states": lambda o: PendingAuthorization.filter(owner_id=o).count(),
    "sync_states": lambda o: SyncState.filter(account__owner_id=o).count(),
    "send_keys": lambda o: SendKey.filter(account__owner_id=o).count(),
    "push_registrations": lambda o: PushRegistration.filter(account__owner_id=o).count(),
    "folders": lambda o: Folder.filter(account__owner_id=o).count(),
    "threads": lambda o: Thread.filter(account__owner_id=o).count(),
    "messages": lambda o: Message.filter(account__owner_id=o).count(),
    "message_labels": lambda o: MessageLabel.filter(message__account__owner_id=o).count(),
    "message_bodies": lambda o: MessageBody.filter(message__account__owner_id=o).count(),
    "attachments": lambda o: Attachment.filter(message__account__owner_id=o).count(),
    "change_log": lambda o: ChangeLogEntry.filter(account__owner_id=o).count(),
    "usage_log": lambda o: UsageLogEntry.filter(owner_id=o).count(),
    "export_jobs": lambda o: ExportJob.filter(owner_id=o).count(),
    SEARCH_TABLE: _search_rows_of_owner,
}


async def owner_rows(owner_id: int) -> dict[str, int]:
    """How many rows the owner has in each table (the search index included)."""
    return {table: await count(owner_id) for table, count in OWNER_TABLES.items()}


ACCOUNT_TABLES: dict[str, Count] = {
    "accounts": lambda a: Account.filter(id=a).count(),
    "credentials": lambda a: Credential.filter(account_id=a).count(),
    "sync_states": lambda a: SyncState.filter(account_id=a).count(),
    "send_keys": lambda a: SendKey.filter(account_id=a).count(),
    "push_registrations": lambda a: PushRegistration.filter(account_id=a).count(),
    "folders": lambda a: Folder.filter(account_id=a).count(),
    "threads": lambda a: Thread.filter(account_id=a).count(),
    "messages": lambda a: Message.filter(account_id=a).count(),
    "message_labels": lambda a: MessageLabel.filter(message__account_id=a).count(),
    "message_bodies": lambda a: MessageBody.filter(message__account_id=a).count(),
    "attachments": lambda a: Attachment.filter(message__account_id=a).count(),
    "change_log": lambda a: ChangeLogEntry.filter(account_id=a).count(),
}


async def account_rows(account_id: int) -> dict[str, int]:
    """How many rows hang on the account in each table."""
    return {table: await count(account_id) for table, count in ACCOUNT_TABLES.items()}


async def fill_account(account: Account, *, subject: str = "Hello") -> list[Message]:
    """One of everything the cache holds for an account: two messages in one thread, filed in
    a folder, with a body, an attachment and change-log rows; a sync state, a send key and a push
    registration."""
    folder = await make_folder(account)
    thread = await make_thread(account)
    messages = [
        await make_message(
            account,
            folders=[folder],
            thread=thread,
            subject=f"{subject} {n}",
            body={"text_body": f"searchable body {n}", "html_body": f"<p>body {n}</p>"},
            attachments=[{"filename": f"file{n}.pdf", "content_type": "application/pdf"}],
        )
        for n in (1, 2)
    ]
    for message in messages:
        await ChangeLogEntry.create(
            account=account,
            kind=ChangeKind.MESSAGE_ADDED,
            message_id=message.id,
            provider_id=message.provider_id,
        )
    await SyncState.get_or_create(account_id=account.id)
    await SendKey.create(
        account=account, key=secrets.token_hex(8), state="sent", message_id_header="<s@x>"
    )
    await PushRegistration.create(
        account=account, provider=account.provider, renew_after=clock.now()
    )
    return messages


async def fill_owner(settings: Settings, owner: Owner) -> list[Account]:
    """Two filled accounts, a sealed-looking credential, a usage row, a pending OAuth consent
    and a ready export with its file: a row in every table an owner can have."""
    accounts = [
        await make_account(owner),
        await make_account(owner, provider=Provider.IMAP),
    ]
    for account in accounts:
        await fill_account(account)
    await Credential.create(
        account_id=accounts[1].id, kind="imap_password", ciphertext=b"opaque", key_id="k1"
    )
    now = clock.now()
    await UsageLogEntry.create(
        owner_id=owner.id, at=now, operation_type="query", status="ok", duration_ms=1.0
    )
    await PendingAuthorization.create(
        owner_id=owner.id,
        state_digest=secrets.token_hex(32),
        provider=Provider.GMAIL,
        sealed_flow=b"opaque",
        expires_at=now + timedelta(minutes=10),
    )
    archive_id = secrets.token_urlsafe(24)
    await ExportJob.create(
        owner_id=owner.id,
        archive_id=archive_id,
        status=ExportStatus.READY,
        created_at=now,
        expires_at=now + timedelta(days=365),
    )
    path = archive_path(settings, archive_id)
    path.write_bytes(b"PK")
    os.chmod(path, 0o600)
    return accounts


def new_mail_batch(provider_id: str = "late-1") -> ChangeBatch:
    """A batch as a sync that was already running would apply it: a new message with content."""
    return ChangeBatch(
        upserts=[
            MessageRecord(
                provider_id=provider_id,
                thread_provider_id="late-thread",
                subject="arrived late",
                date=clock.now(),
                from_addresses=(Address("Late", "late@example.com"),),
                label_ids=("INBOX",),
                content=MessageContent("late body", None, (("Subject", "arrived late"),)),
            )
        ],
        cursor="cursor-after-erasure",
    )
