"""``inbox-api purge [--dry-run]`` on the test database, as an operator runs it (real clock):
the dry run reports per table and deletes nothing; the real run deletes what it reported."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import timedelta

from tortoise import connections

from app import clock
from app.models import Message, Owner, UsageLogEntry
from app.settings import Settings
from tests.factories import make_account, make_message, make_owner
from tests.privacy.rows import fill_owner, owner_rows

CLI = [sys.executable, "-m", "app.cli"]


async def run_purge(settings: Settings, *args: str) -> str:
    if not settings.is_postgres:
        # Let go of the SQLite file while another process uses it (reconnected on next use).
        # Tests that read the file with open() (a raw dump) drop this process's POSIX locks on
        # it; SQLite in the other process then takes itself for the last user and resets the
        # WAL, and whatever this connection writes afterwards would be lost to everyone else.
        await connections.get("default").close()
    env = {
        **os.environ,
        "INBOX_API_DATABASE_URL": settings.effective_database_url,
        "INBOX_API_DATA_DIR": str(settings.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "purge",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


def reported(output: str, table: str) -> list[int]:
    """The counts printed for ``table``, one per section that names it."""
    return [int(n) for n in re.findall(rf"^\s+{table}\s+(\d+)$", output, re.MULTILINE)]


async def test_dry_run_reports_per_table_and_deletes_nothing(db: Settings) -> None:
    made = await make_owner()
    account = await make_account(made.owner, retention_days=30)
    now = clock.now()
    due = await make_message(account, date=now - timedelta(days=31), body={"text_body": "old"})
    kept = await make_message(account, date=now - timedelta(days=29))
    await UsageLogEntry.create(
        owner_id=made.owner.id,
        at=now - timedelta(days=91),
        operation_type="query",
        status="ok",
        duration_ms=1.0,
    )
    gone = await make_owner()
    await fill_owner(db, gone.owner)
    await Owner.filter(id=gone.owner.id).update(
        terminated_at=now - timedelta(days=db.termination_grace_days + 1)
    )
    rows_before = await owner_rows(gone.owner.id)

    dry = await run_purge(db, "--dry-run")

    assert dry.startswith("dry run: nothing deleted; would delete")
    assert sum(reported(dry, "messages")) >= 1 + rows_before["messages"]
    assert all(n >= 1 for n in reported(dry, "message_bodies"))
    assert sum(reported(dry, "usage_log")) >= 1 + rows_before["usage_log"]
    assert sum(reported(dry, "owners")) >= 1
    assert await Message.exists(id=due.id)
    assert await UsageLogEntry.filter(owner_id=made.owner.id).count() == 1
    assert await owner_rows(gone.owner.id) == rows_before

    done = await run_purge(db)

    assert done.startswith("deleted")
    assert sum(reported(done, "messages")) >= 1 + rows_before["messages"]
    assert not await Message.exists(id=due.id), done
    assert await Message.exists(id=kept.id)
    assert await UsageLogEntry.filter(owner_id=made.owner.id).count() == 0
    assert set((await owner_rows(gone.owner.id)).values()) == {0}
