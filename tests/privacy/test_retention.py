"""Retention on a moved clock: each account's cache policy, and the usage log's 90 days.

A message one day inside its account's retention stays, one day past it goes with its body,
attachments, label links, search index entry and change-log rows; the threads it leaves are
recomputed (or deleted when empty). Nothing of another account or owner moves.
"""

from __future__ import annotations

from datetime import timedelta

from tortoise.transactions import in_transaction

from app import clock
from app.models import (
    Attachment,
    ChangeLogEntry,
    Message,
    MessageBody,
    MessageLabel,
    Thread,
    UsageLogEntry,
)
from app.services.purge import purge, purge_account_messages
from app.services.thread_summaries import recompute_threads
from app.settings import Settings
from app.types import ChangeKind
from tests.factories import (
    address,
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
)
from tests.privacy.rows import account_rows, fill_account, owner_rows, search_entries

RETENTION = 30


async def test_retention_removes_exactly_what_is_due(db: Settings) -> None:
    made, other = await make_owner(), await make_owner()
    account = await make_account(made.owner, retention_days=RETENTION)
    keep_forever = await make_account(made.owner)  # retention_days null
    folder = await make_folder(account)
    shared, lonely = await make_thread(account), await make_thread(account)
    now = clock.now()
    body = {"text_body": "quarterly figures", "raw_mime": b"Subject: x\r\n\r\nx"}
    # Today: A is dated now, B two days ago. After RETENTION - 1 days, A is one day inside the
    # retention and B one day past it.
    fresh = await make_message(
        account, folders=[folder], thread=shared, date=now, subject="fresh", unread=False
    )
    due = await make_message(
        account,
        folders=[folder],
        thread=shared,
        date=now - timedelta(days=2),
        subject="due",
        unread=True,
        from_addresses=[address("gone@example.com", "Gone")],
        body=body,
        attachments=[{"filename": "figures.pdf", "content_type": "application/pdf"}],
    )
    alone = await make_message(account, thread=lonely, date=now - timedelta(days=3), body=body)
    async with in_transaction() as conn:
        await recompute_threads(conn, [shared.id, lonely.id])
    for message in (fresh, due, alone):
        await ChangeLogEntry.create(
            account=account, kind=ChangeKind.MESSAGE_ADDED, message_id=message.id
        )
    status_change = await ChangeLogEntry.create(account=account, kind=ChangeKind.ACCOUNT_STATUS)
    forever = await make_message(keep_forever, date=now - timedelta(days=400))
    await fill_account(await make_account(other.owner, retention_days=RETENTION))
    others_before = await owner_rows(other.owner.id)
    assert await search_entries([fresh.id, due.id, alone.id]) == {fresh.id, due.id, alone.id}

    clock.travel(timedelta(days=RETENTION - 1))
    cutoff = clock.now() - timedelta(days=RETENTION)
    planned = await purge_account_messages(account.id, cutoff, dry_run=True)
    assert planned == {
        "messages": 2,
        "message_bodies": 2,
        "attachments": 1,
        "message_labels": 1,
        "change_log": 2,
        "message_search": 2,
        "threads": 1,
    }
    assert await Message.filter(account_id=account.id).count() == 3  # the dry run kept all

    report = await purge(db)

    assert not report.dry_run
    assert report.sections["retention"]["messages"] >= 2
    assert set(await Message.filter(account_id=account.id).values_list("id", flat=True)) == {
        fresh.id
    }
    gone = [due.id, alone.id]
    assert await MessageBody.filter(message_id__in=gone).count() == 0
    assert await Attachment.filter(message_id__in=gone).count() == 0
    assert await MessageLabel.filter(message_id__in=gone).count() == 0
    assert await MessageLabel.filter(message_id=fresh.id).count() == 1
    assert await search_entries([fresh.id, due.id, alone.id]) == {fresh.id}
    left = (
        await ChangeLogEntry.filter(account_id=account.id)
        .order_by("id")
        .values_list("id", "message_id")
    )
    assert [message_id for _, message_id in left] == [fresh.id, None]
    assert left[-1][0] == status_change.id
    thread = await Thread.get(id=shared.id)
    assert (thread.message_count, thread.unread_count, thread.subject) == (1, 0, "fresh")
    assert thread.last_message_at == fresh.date
    assert "gone@example.com" not in {p["email"] for p in thread.participants}
    assert not await Thread.exists(id=lonely.id)
    assert await Message.exists(id=forever.id)
    assert await owner_rows(other.owner.id) == others_before


async def test_nothing_goes_a_day_before_it_is_due(db: Settings) -> None:
    made = await make_owner()
    account = await make_account(made.owner, retention_days=RETENTION)
    message = await make_message(account, date=clock.now(), body={"text_body": "still here"})
    before = await account_rows(account.id)

    clock.travel(timedelta(days=RETENTION - 1))
    await purge(db)

    assert await account_rows(account.id) == before
    assert await search_entries([message.id]) == {message.id}


async def test_usage_log_keeps_89_days_and_drops_91(db: Settings) -> None:
    made = await make_owner()
    now = clock.now()
    for age, name in ((0, "age89"), (2, "age91")):
        await UsageLogEntry.create(
            owner_id=made.owner.id,
            at=now - timedelta(days=age),
            operation_name=name,
            operation_type="query",
            status="ok",
            duration_ms=1.0,
        )

    clock.travel(timedelta(days=89))
    dry = await purge(db, dry_run=True)
    assert dry.sections["usage_log"]["usage_log"] >= 1
    assert await UsageLogEntry.filter(owner_id=made.owner.id).count() == 2
    report = await purge(db)

    assert report.sections["usage_log"]["usage_log"] >= 1
    names = await UsageLogEntry.filter(owner_id=made.owner.id).values_list(
        "operation_name", flat=True
    )
    assert list(names) == ["age89"]
