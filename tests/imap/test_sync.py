"""The sync engine and ``sync.apply`` with the IMAP adapter against a real Dovecot.

The cache must equal the server as another IMAP client sees it (membership per folder, flags,
Message-IDs; no message twice) after a full sync, after random sequences of what other clients
do (APPEND, LMTP delivery, flag changes, MOVE, COPY, EXPUNGE, new and deleted folders), after a
folder is renumbered (UIDVALIDITY), and a wrong password must stop the account without retries.
A message another client moves keeps its API id (a deletion and an arrival with the same
Message-ID in one batch are one message moved).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from app.events import InProcessBus
from app.models import Account, Attachment, ChangeLogEntry, Message, MessageBody, SyncState
from app.settings import Settings
from app.types import AccountStatus, ChangeKind, SyncPhase
from emulators.corpus import make_mailbox, make_message
from sync.engine import OutcomeKind, SyncOutcome, sync_account
from tests.imap.conftest import ImapAccounts, Mailbox, server_truth
from tests.support.dovecot import OtherClient
from tests.sync.harness import cache_snapshot, thread_counts

FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "$Label1")


async def sync(accounts: ImapAccounts, account: Account) -> SyncOutcome:
    return await sync_account(account.id, accounts.factory, InProcessBus())


async def assert_cache_equals_server(account: Account, mailbox: Mailbox) -> None:
    with mailbox.server.client(mailbox.user) as other:
        folders = other.folders()
    snapshot = await cache_snapshot(account.id)
    assert sorted(snapshot.folders) == sorted(folders)
    cached = {
        pid: {
            "label_ids": message["label_ids"],
            "unread": message["unread"],
            "starred": message["starred"],
            "message_id_header": message["message_id_header"],
        }
        for pid, message in snapshot.messages.items()
    }
    assert cached == server_truth(mailbox, folders)
    for pid, message in snapshot.messages.items():
        assert message["labels"] == message["label_ids"], pid  # linked to its folder
    stored = {t: (row["message_count"], row["unread_count"]) for t, row in snapshot.threads.items()}
    assert stored == thread_counts(snapshot)


def fill(mailbox: Mailbox, seed: int, count: int) -> list[bytes]:
    corpus = make_mailbox(seed, count)
    with mailbox.server.client(mailbox.user) as other:
        other.create("Projects")
        cut = [0, count // 2, count * 3 // 4, count * 7 // 8, count]
        for folder, start, end in zip(
            ("INBOX", "Archive", "Sent", "Projects"), cut[:-1], cut[1:], strict=True
        ):
            other.append_many(folder, corpus[start:end])
    return corpus


async def test_a_full_sync_through_the_engine_equals_the_server(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    fill(mailbox, seed=3, count=80)
    account = await accounts.account(mailbox, page_size=15)

    outcome = await sync(accounts, account)

    assert (outcome.kind, outcome.added, outcome.full_syncs) == (OutcomeKind.SYNCED, 80, 1)
    await assert_cache_equals_server(account, mailbox)
    assert await MessageBody.filter(message__account_id=account.id).count() == 80
    assert await Attachment.filter(message__account_id=account.id).exists()
    snapshot = await cache_snapshot(account.id)
    assert {row["role"] for row in snapshot.folders.values()} >= {"inbox", "sent", "archive"}
    assert any(row["message_count"] > 1 for row in snapshot.threads.values())
    state = await SyncState.get(account_id=account.id)
    assert state.phase == SyncPhase.INCREMENTAL
    assert state.full_sync_page_token is None

    again = await sync(accounts, account)
    assert (again.kind, again.added, again.changed, again.deleted) == (OutcomeKind.SYNCED, 0, 0, 0)


class OtherClients:
    """What other mail clients and an MTA do to the mailbox, drawn from a seeded generator."""

    def __init__(self, mailbox: Mailbox, rng: random.Random, known: list[bytes]) -> None:
        self.mailbox = mailbox
        self.rng = rng
        self.custom = ["Projects"]
        self.known = known  # messages to reply to, so that threads grow

    def act(self, count: int) -> None:
        with self.mailbox.server.client(self.mailbox.user) as other:
            for _ in range(count):
                self._one(other)

    def _one(self, other: OtherClient) -> None:
        rng = self.rng
        folders = ["INBOX", "Archive", "Sent", "Trash", *self.custom]
        folder = rng.choice(folders)
        uids = other.uids(folder)
        kind = rng.choice(
            ["deliver", "append", "flags", "flags", "move", "move", "copy", "expunge", "flash"]
        )
        if kind == "deliver" or (not uids and kind != "append"):
            self.mailbox.server.deliver(self.mailbox.user, self._message())
        elif kind == "append":
            flags = rng.sample(FLAGS, rng.randint(0, 2))
            other.append(folder, self._message(), flags)
        elif kind == "flags":
            change = rng.choice(["+FLAGS", "-FLAGS"])
            other.store(folder, rng.choice(uids), change, rng.sample(FLAGS, rng.randint(1, 2)))
        elif kind in ("move", "copy"):
            target = rng.choice([f for f in folders if f != folder])
            (other.move if kind == "move" else other.copy)(folder, rng.choice(uids), target)
        elif kind == "expunge":
            other.expunge(folder, rng.choice(uids))
        else:  # delivered and expunged between two syncs: must never show up
            uid = other.append(folder, self._message())
            other.expunge(folder, uid)
        if rng.random() < 0.04:
            name = f"Topic {len(self.custom)}"
            other.create(name)
            self.custom.append(name)
            source = rng.choice(folders)
            for uid in other.uids(source)[:2]:
                other.move(source, uid, name)
        elif rng.random() < 0.03 and len(self.custom) > 1:
            other.delete(self.custom.pop(rng.randrange(1, len(self.custom))))

    def _message(self) -> bytes:
        parent = self.rng.choice(self.known) if self.rng.random() < 0.4 else None
        raw = make_message(self.rng, thread_of=parent)
        self.known.append(raw)
        return raw


@pytest.mark.parametrize(
    ("seed", "disabled"),
    [(1, ()), (2, ()), (3, ("QRESYNC",)), (4, ("QRESYNC", "CONDSTORE"))],
    ids=["qresync-1", "qresync-2", "condstore", "flags-only"],
)
async def test_random_changes_by_other_clients_end_with_the_cache_equal_to_the_server(
    db: Settings,
    accounts: ImapAccounts,
    mailbox: Mailbox,
    seed: int,
    disabled: tuple[str, ...],
) -> None:
    rng = random.Random(seed)
    corpus = fill(mailbox, seed=seed, count=40)
    account = await accounts.account(mailbox, page_size=6, disabled_extensions=disabled)
    assert (await sync(accounts, account)).kind == OutcomeKind.SYNCED
    await assert_cache_equals_server(account, mailbox)
    others = OtherClients(mailbox, rng, corpus)
    totals: dict[str, int] = {"added": 0, "changed": 0, "deleted": 0}

    for round_number in range(4):
        others.act(rng.randint(4, 14))
        if round_number == 0:  # at least one change a reader sees, whatever the draws were
            with mailbox.server.client(mailbox.user) as other:
                other.store("Archive", other.uids("Archive")[0], "+FLAGS", ["\\Seen"])
        outcome = await sync(accounts, account)
        assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 0)
        for key in totals:
            totals[key] += getattr(outcome, key)
        await assert_cache_equals_server(account, mailbox)

    assert all(totals.values()), totals


async def ids_by_message_id(account: Account) -> dict[str, tuple[int, list[str]]]:
    """API row id and folders of each cached message whose Message-ID is unique in the cache."""
    rows = await Message.filter(account_id=account.id).values(
        "id", "message_id_header", "label_ids"
    )
    headers = Counter(row["message_id_header"] for row in rows)
    return {
        row["message_id_header"]: (row["id"], row["label_ids"])
        for row in rows
        if row["message_id_header"] and headers[row["message_id_header"]] == 1
    }


async def test_a_message_moved_by_another_client_keeps_its_api_id(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    fill(mailbox, seed=5, count=12)
    account = await accounts.account(mailbox)
    await sync(accounts, account)
    before = await ids_by_message_id(account)
    with mailbox.server.client(mailbox.user) as other:
        other.move("INBOX", other.uids("INBOX")[0], "Archive")

    outcome = await sync(accounts, account)

    assert (outcome.added, outcome.changed, outcome.deleted) == (0, 1, 0)
    after = await ids_by_message_id(account)
    assert {header: row_id for header, (row_id, _) in after.items()} == {
        header: row_id for header, (row_id, _) in before.items()
    }
    moved = [h for h in after if after[h][1] != before[h][1]]
    assert [(before[h][1], after[h][1]) for h in moved] == [(["INBOX"], ["Archive"])]
    kinds = await ChangeLogEntry.filter(
        account_id=account.id, message_id=after[moved[0]][0]
    ).values_list("kind", flat=True)
    assert kinds[-1] == ChangeKind.MESSAGE_CHANGED
    await assert_cache_equals_server(account, mailbox)


@pytest.mark.parametrize("seed", [5, 6, 7])
async def test_random_moves_by_other_clients_keep_api_ids(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox, seed: int
) -> None:
    """Each round is one batch (page size 500): every message the cache holds once before and
    once after a round keeps its API id, in whatever folder it ended up."""
    rng = random.Random(seed)
    corpus = fill(mailbox, seed=seed, count=40)
    account = await accounts.account(mailbox)
    await sync(accounts, account)
    others = OtherClients(mailbox, rng, corpus)
    moved_and_kept = 0
    for _ in range(4):
        before = await ids_by_message_id(account)
        others.act(rng.randint(6, 14))
        outcome = await sync(accounts, account)
        assert outcome.kind == OutcomeKind.SYNCED
        await assert_cache_equals_server(account, mailbox)
        after = await ids_by_message_id(account)
        for header in before.keys() & after.keys():
            assert after[header][0] == before[header][0], header
            moved_and_kept += after[header][1] != before[header][1]
    assert moved_and_kept > 0


async def test_a_renumbered_folder_leaves_no_duplicates(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    fill(mailbox, seed=8, count=40)
    account = await accounts.account(mailbox, page_size=8)
    await sync(accounts, account)
    with mailbox.server.client(mailbox.user) as other:
        other.store("Archive", 2, "+FLAGS", ["\\Flagged"])
        other.recreate_with_same_messages("Archive")
        other.recreate_with_same_messages("Sent")

    outcome = await sync(accounts, account)

    assert (outcome.kind, outcome.full_syncs) == (OutcomeKind.SYNCED, 0)
    assert (outcome.added, outcome.deleted) == (15, 15)  # Archive 10 + Sent 5, renumbered
    await assert_cache_equals_server(account, mailbox)
    headers = await Message.filter(account_id=account.id).values_list(
        "message_id_header", flat=True
    )
    assert len(headers) == len(set(headers)) == 40


async def test_a_wrong_password_stops_the_account_without_retries(
    db: Settings, accounts: ImapAccounts, mailbox: Mailbox
) -> None:
    account = await accounts.account(mailbox, password="an-old-password")

    outcome = await sync(accounts, account)

    assert (outcome.kind, outcome.error_code) == (OutcomeKind.NEEDS_REAUTH, "LOGIN")
    refreshed: Any = await Account.get(id=account.id)
    assert refreshed.status == AccountStatus.NEEDS_REAUTH
    state = await SyncState.get(account_id=account.id)
    assert (state.phase, state.next_run_at) == (SyncPhase.STOPPED, None)
    again = await sync(accounts, account)
    assert again.kind == OutcomeKind.SKIPPED
    assert len(accounts.built) == 1  # one login attempt in all
