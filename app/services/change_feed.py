"""Reading the change log after a cursor, for the accounts a principal may touch.

The change log's id is the one cursor of every subscription: readers ask for the rows after an
id, in id order, in bounded batches, for one owner's accounts (all of them, or a set) and some
kinds. Nothing else is trusted for ordering or deduplication; events on the bus only say "read
the log again".

A ``Position`` is what a client holds between two connections, handed out as an opaque cursor:
``base64url("c1:<change id>:<epoch ms of that change>")``. The time serves one purpose, gap
detection on resume (``find_gaps``): the purge deletes each account's oldest rows, so an account
whose oldest retained row comes after the cursor may have lost rows the client never saw::

    account X in scope, resuming after change c (written at time t)
      X has a retained row <= c ............................ no gap (the purge starts at the oldest)
      X has no retained row at all ........................... no gap (nothing left to replay)
      X existed at t, or every row <= c is gone (log-wide) .. GAP: re-read X, then follow on
      otherwise (X was connected after t) ................... no gap (all of X's rows came after c)

This module never returns message content: rows carry ids, kinds and the status detail of
``ACCOUNT_STATUS`` rows. It never writes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.auth.principal import Principal
from app.models import Account, ChangeLogEntry
from app.services.errors import InvalidInput, NotFound
from app.types import AccountId, ChangeKind, MessageId, OwnerId

MESSAGE_KINDS = frozenset(
    {ChangeKind.MESSAGE_ADDED, ChangeKind.MESSAGE_CHANGED, ChangeKind.MESSAGE_DELETED}
)
ACCOUNT_KINDS = frozenset({ChangeKind.ACCOUNT_STATUS})
BATCH_SIZE = 500
MAX_REQUESTED_ACCOUNTS = 100
_CURSOR_VERSION = "c1"
_COLUMNS = ("id", "account_id", "kind", "message_id", "detail", "created_at")
_LOG_COLUMNS = (*_COLUMNS, "account__owner_id")


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change log, as readers see it."""

    id: int
    account_id: AccountId
    owner_id: OwnerId
    kind: ChangeKind
    message_id: MessageId | None
    detail: Mapping[str, Any]
    created_at: datetime

    @property
    def position(self) -> Position:
        return Position(self.id, self.created_at)


@dataclass(frozen=True, slots=True)
class Position:
    """Everything up to change ``change_id`` (written at ``at``) has been delivered."""

    change_id: int
    at: datetime

    @property
    def cursor(self) -> str:
        millis = int(self.at.timestamp() * 1000)
        text = f"{_CURSOR_VERSION}:{self.change_id}:{millis}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, cursor: str) -> Position:
        """The position a cursor names; ``InvalidInput`` for anything that is not ours."""
        if len(cursor) > 80:
            raise InvalidInput("after is not a cursor", field="after")
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            version, change_id, millis = text.split(":")
            if version != _CURSOR_VERSION or not change_id.isdigit() or not millis.isdigit():
                raise ValueError(version)
            return cls(int(change_id), datetime.fromtimestamp(int(millis) / 1000, UTC))
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
            raise InvalidInput("after is not a cursor", field="after") from None


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which rows one reader may see: one owner, some of its accounts (None: all), some kinds."""

    owner_id: OwnerId
    account_ids: frozenset[AccountId] | None
    kinds: frozenset[ChangeKind]

    def admits(self, change: Change) -> bool:
        return (
            change.owner_id == self.owner_id
            and change.kind in self.kinds
            and (self.account_ids is None or change.account_id in self.account_ids)
        )


async def filter_for(
    principal: Principal, kinds: frozenset[ChangeKind], requested: Iterable[int] | None = None
) -> FeedFilter:
    """The filter of ``principal`` for these kinds, narrowed to ``requested`` accounts if given.

    A requested account the principal may not touch, or that is not its owner's, is NotFound:
    the same answer as for an account that does not exist.
    """
    if requested is None:
        return FeedFilter(principal.owner_id, principal.account_ids, kinds)
    wanted = frozenset(AccountId(a) for a in requested)
    if len(wanted) > MAX_REQUESTED_ACCOUNTS:
        raise InvalidInput(
            f"at most {MAX_REQUESTED_ACCOUNTS} accounts per subscription", field="accountIds"
        )
    if not all(principal.may_touch(a) for a in wanted):
        raise NotFound("account not found")
    owned = await Account.filter(owner_id=principal.owner_id, id__in=sorted(wanted)).count()
    if owned != len(wanted):
        raise NotFound("account not found")
    return FeedFilter(principal.owner_id, wanted, kinds)


def change_from_row(row: Mapping[str, Any], owner_id: int | None = None) -> Change:
    """A ``Change`` from a row of ``_LOG_COLUMNS``, or of ``_COLUMNS`` and the owner id."""
    detail = row["detail"]
    created_at: datetime = row["created_at"]
    # A row whose account was deleted after the read has no owner: no one listens to owner 0.
    owner = row.get("account__owner_id") if owner_id is None else owner_id
    return Change(
        id=int(row["id"]),
        account_id=AccountId(int(row["account_id"])),
        owner_id=OwnerId(int(owner or 0)),
        kind=ChangeKind(row["kind"]),
        message_id=None if row["message_id"] is None else MessageId(int(row["message_id"])),
        detail=detail if isinstance(detail, dict) else {},
        created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
    )


async def read_changes(
    feed: FeedFilter, *, after: int, up_to: int | None, limit: int = BATCH_SIZE
) -> list[Change]:
    """At most ``limit`` rows of ``feed`` with ``after < id <= up_to``, in id order."""
    account_ids = feed.account_ids
    if account_ids is None:
        # The owner's accounts now, so the (account_id, id) index serves the range.
        owned = await Account.filter(owner_id=feed.owner_id).values_list("id", flat=True)
        account_ids = frozenset(AccountId(int(str(a))) for a in owned)
    if not account_ids:
        return []
    query = ChangeLogEntry.filter(
        id__gt=after, account_id__in=sorted(account_ids), kind__in=sorted(feed.kinds)
    )
    if up_to is not None:
        query = query.filter(id__lte=up_to)
    rows = await query.order_by("id").limit(limit).values(*_COLUMNS)
    return [change_from_row(row, feed.owner_id) for row in rows]


async def read_log_after(after: int, *, limit: int = BATCH_SIZE) -> list[Change]:
    """At most ``limit`` rows of every account with ``id > after``, in id order."""
    query = ChangeLogEntry.filter(id__gt=after).order_by("id").limit(limit)
    rows = await query.values(*_LOG_COLUMNS)
    return [change_from_row(row) for row in rows]


async def last_change_id(*, written_before: datetime | None = None) -> int:
    """The highest change id (0 for an empty log), among rows written before a time if given."""
    query = ChangeLogEntry.all()
    if written_before is not None:
        query = query.filter(created_at__lt=written_before)
    row = await query.order_by("-id").first().values("id")
    return 0 if row is None else int(row["id"])


async def find_gaps(feed: FeedFilter, after: Position) -> list[AccountId]:
    """Accounts of ``feed`` whose rows after ``after`` may have been purged (module docstring)."""
    accounts = Account.filter(owner_id=feed.owner_id)
    if feed.account_ids is not None:
        accounts = accounts.filter(id__in=sorted(feed.account_ids))
    created = {
        AccountId(int(row["id"])): row["created_at"]
        for row in await accounts.values("id", "created_at")
    }
    if not created:
        return []
    oldest: dict[AccountId, int] = {}
    for account_id in sorted(created):
        # One index seek per account on (account_id, id); a GROUP BY would scan every row.
        query = ChangeLogEntry.filter(account_id=account_id).order_by("id")
        first = await query.first().values("id")
        if first is not None:
            oldest[account_id] = int(first["id"])
    log_start = await ChangeLogEntry.all().order_by("id").first().values("id")
    purged_past_cursor = log_start is not None and int(log_start["id"]) > after.change_id
    return sorted(
        account_id
        for account_id, first_retained in oldest.items()
        if first_retained > after.change_id
        and (purged_past_cursor or created[account_id] <= after.at)
    )
