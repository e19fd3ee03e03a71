"""Live events over WebSocket (graphql-transport-ws): message and account changes, resumable.

Each event is one row of the change log (``app.services.change_feed``), read for the accounts
the token may touch, in id order, once. Its ``cursor`` resumes right after it: a client that
reconnects with ``after: <last cursor>`` gets every change it missed, then live ones, without
gaps or duplicates. When the purge removed changes the client never saw, a ``GAP`` event for
that account comes first: re-read the account's messages, then follow the events.

Scopes: ``messageEvents`` needs messages:metadata, ``accountEvents`` accounts:read. A WebSocket
connection keeps one context for its whole life, so every event starts with empty loaders and
reads the cache as it is when the event is sent.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import strawberry

from app.models import Account as AccountRow
from app.services.change_feed import (
    ACCOUNT_KINDS,
    MESSAGE_KINDS,
    Change,
    FeedFilter,
    Position,
    filter_for,
)
from app.services.change_tail import Gap, follow_changes
from app.services.errors import NotFound
from app.types import AccountStatus, Action, ChangeKind
from resolvers.accounts import Account
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.messages import Message, find_message
from resolvers.permissions import requires


@strawberry.enum(description="What happened to a message; GAP: changes were lost, re-read.")
class MessageEventKind(Enum):
    MESSAGE_ADDED = "message_added"
    MESSAGE_CHANGED = "message_changed"
    MESSAGE_DELETED = "message_deleted"
    GAP = "gap"


@strawberry.enum(description="What happened to an account; GAP: changes were lost, re-read.")
class AccountEventKind(Enum):
    ACCOUNT_STATUS = "account_status"
    GAP = "gap"


_ID = "Stable: the same change always has the same id."
_CURSOR = "Pass as `after` to resume right after this event."
_OCCURRED_AT = "When the change reached the cache (GAP: the time of the cursor it follows)."


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What every event carries, whatever its type."""

    id: strawberry.ID
    cursor: str
    account_id: strawberry.ID
    occurred_at: datetime

    @classmethod
    def of(cls, item: Change | Gap) -> _Envelope:
        if isinstance(item, Gap):
            text, position = f"Gap:{item.account_id}:{item.position.change_id}", item.position
        else:
            text, position = f"Change:{item.id}", item.position
        return cls(
            id=strawberry.ID(base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")),
            cursor=position.cursor,
            account_id=strawberry.ID(encode_id("Account", item.account_id)),
            occurred_at=position.at,
        )


@strawberry.type(description="A message of a connected account was added, changed or deleted.")
class MessageEvent:
    id: strawberry.ID = strawberry.field(description=_ID)
    cursor: str = strawberry.field(description=_CURSOR)
    kind: MessageEventKind
    account_id: strawberry.ID
    message_id: strawberry.ID | None = strawberry.field(
        description="Global id of the message (null for GAP)."
    )
    occurred_at: datetime = strawberry.field(description=_OCCURRED_AT)
    row_id: strawberry.Private[int | None]

    @strawberry.field(
        description="The message as the cache holds it when the event is sent, read with the "
        "token's scopes; null for MESSAGE_DELETED and GAP, and once the message is gone."
    )
    async def message(self, info: strawberry.Info[Context, None]) -> Message | None:
        if self.row_id is None or self.kind is MessageEventKind.MESSAGE_DELETED:
            return None
        return await find_message(info, self.row_id)

    @classmethod
    def of(cls, item: Change | Gap) -> MessageEvent:
        envelope = _Envelope.of(item)
        row_id = None if isinstance(item, Gap) else item.message_id
        return cls(
            id=envelope.id,
            cursor=envelope.cursor,
            kind=MessageEventKind.GAP if isinstance(item, Gap) else MessageEventKind(item.kind),
            account_id=envelope.account_id,
            message_id=None if row_id is None else strawberry.ID(encode_id("Message", row_id)),
            occurred_at=envelope.occurred_at,
            row_id=row_id,
        )


@strawberry.type(description="A connected account's status changed (sync, re-authorisation).")
class AccountEvent:
    id: strawberry.ID = strawberry.field(description=_ID)
    cursor: str = strawberry.field(description=_CURSOR)
    kind: AccountEventKind
    account_id: strawberry.ID
    status: AccountStatus | None = strawberry.field(
        description="The status the change set (null for GAP)."
    )
    reason: str | None = strawberry.field(description="Why, as a code, when one is known.")
    occurred_at: datetime = strawberry.field(description=_OCCURRED_AT)
    row_id: strawberry.Private[int]

    @strawberry.field(description="The account as it is now; null once it is disconnected.")
    async def account(self, info: strawberry.Info[Context, None]) -> Account | None:
        principal = info.context.require_principal()
        row = await AccountRow.get_or_none(id=self.row_id, owner_id=principal.owner_id)
        return None if row is None or not principal.may_touch(row.id) else Account.from_row(row)

    @classmethod
    def of(cls, item: Change | Gap) -> AccountEvent:
        envelope = _Envelope.of(item)
        detail = {} if isinstance(item, Gap) else item.detail
        reason = detail.get("reason")
        return cls(
            id=envelope.id,
            cursor=envelope.cursor,
            kind=AccountEventKind.GAP if isinstance(item, Gap) else AccountEventKind.ACCOUNT_STATUS,
            account_id=envelope.account_id,
            status=_status(detail.get("status")),
            reason=reason if isinstance(reason, str) else None,
            occurred_at=envelope.occurred_at,
            row_id=item.account_id,
        )


def _status(value: object) -> AccountStatus | None:
    try:
        return AccountStatus(str(value))
    except ValueError:
        return None


async def _items(
    info: strawberry.Info[Context, None],
    kinds: frozenset[ChangeKind],
    account_ids: list[strawberry.ID] | None,
    after: str | None,
) -> AsyncIterator[Change | Gap]:
    """Checks the arguments before the first event, then yields the feed's items."""
    position = None if after is None else Position.from_cursor(after)
    requested = None
    if account_ids is not None:
        requested = [decode_typed(global_id, "Account") for global_id in account_ids]
        if any(number is None for number in requested):
            raise NotFound("account not found")
    feed: FeedFilter = await filter_for(
        info.context.require_principal(),
        kinds,
        None if requested is None else [n for n in requested if n is not None],
    )
    async for item in follow_changes(info.context.services.changes, feed, position):
        info.context.loaders.clear()
        yield item


@strawberry.type
class Subscription:
    @strawberry.subscription(
        extensions=requires(Action.MESSAGES_METADATA),
        description="Messages added, changed (flags, labels, moves) and deleted, in the order "
        "they reached the cache. `accountIds` narrows to some accounts; `after` resumes after "
        "an event's cursor (without it: from now on).",
    )
    async def message_events(
        self,
        info: strawberry.Info[Context, None],
        account_ids: list[strawberry.ID] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[MessageEvent, None]:
        async for item in _items(info, MESSAGE_KINDS, account_ids, after):
            yield MessageEvent.of(item)

    @strawberry.subscription(
        extensions=requires(Action.ACCOUNTS_READ),
        description="Status changes of the accounts (sync state, needs re-authorisation), in "
        "order. `after` resumes after an event's cursor (without it: from now on).",
    )
    async def account_events(
        self, info: strawberry.Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[AccountEvent, None]:
        async for item in _items(info, ACCOUNT_KINDS, None, after):
            yield AccountEvent.of(item)
