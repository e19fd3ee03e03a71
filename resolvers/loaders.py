"""Per-request DataLoaders for every edge of the read graph: no N+1, whatever the nesting.

Loaders are created lazily in ``info.context.loaders`` (so each request starts empty and
nothing is cached across requests) and return plain rows; the GraphQL types build objects.
By-id loaders keep the caller's tenancy (owner in SQL, token accounts here) and answer None
for anything else, so a foreign id looks exactly like a missing one. Edge loaders take
parents that were loaded with tenancy already.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from app.models import Account as AccountRow
from app.services import message_content
from app.services.message_content import Content, MessageRef
from app.types import MessageId
from resolvers.context import Context
from resolvers.lists import MAX_BRANCHES, Branch, Listing, count_rows, fetch_windows
from resolvers.pagination import PageRequest
from resolvers.rows import (
    ATTACHMENTS_OF_MESSAGES,
    FOLDERS_BY_ID,
    FOLDERS_OF_ACCOUNTS,
    MESSAGES_BY_ID,
    THREADS_BY_ID,
)
from resolvers.sql import Row, Statement, dialect

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class Criteria(Protocol, Hashable):
    """What list criteria offer the loaders (``MessageCriteria``, ``ThreadCriteria``)."""

    def where(self, sql: Statement) -> list[str]: ...


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose shared per-key futures survive the cancellation of one waiter.

    graphql-core cancels the sibling resolvers of a field whose error nulls their parent; a
    cancelled ``await future`` cancels the future itself, and every other field waiting on
    the same key (an alias, a second selection of the same body) would then raise
    ``CancelledError`` out of the whole request. Shielded, only the waiter is cancelled.
    """

    def load(self, key: K) -> asyncio.Future[V]:
        return asyncio.shield(super().load(key))


def _loader(
    context: Context, name: str, load: Callable[[list[K]], Awaitable[list[V]]]
) -> DataLoader[K, V]:
    loader: DataLoader[K, V] | None = context.loaders.get(name)
    if loader is None:
        loader = SharedLoader(load_fn=load, max_batch_size=MAX_BRANCHES)
        context.loaders[name] = loader
    return loader


async def once(context: Context, name: str, compute: Callable[[], Awaitable[T]]) -> T:
    """``compute()`` at most once per request, shared by every resolver that asks."""
    future: asyncio.Future[T] | None = context.loaders.get(name)
    if future is None:
        future = asyncio.ensure_future(compute())
        context.loaders[name] = future
    return await asyncio.shield(future)  # one waiter cancelled must not cancel the others


def _rows_by_id(
    context: Context, name: str, statement: str, account_column: int
) -> DataLoader[int, Row | None]:
    principal = context.require_principal()

    async def load(ids: list[int]) -> list[Row | None]:
        sql = Statement(dialect())
        text = statement.format(owner=sql(principal.owner_id), ids=sql.each(ids))
        rows = await sql.rows(text)
        found = {row[0]: row for row in rows if principal.may_touch(row[account_column])}
        return [found.get(number) for number in ids]

    return _loader(context, name, load)


async def message_row(context: Context, message_id: int) -> Row | None:
    return await _rows_by_id(context, "message_by_id", MESSAGES_BY_ID, 3).load(message_id)


async def thread_row(context: Context, thread_id: int) -> Row | None:
    return await _rows_by_id(context, "thread_by_id", THREADS_BY_ID, 3).load(thread_id)


async def folder_row(context: Context, folder_id: int) -> Row | None:
    return await _rows_by_id(context, "folder_by_id", FOLDERS_BY_ID, 2).load(folder_id)


def _grouped(statement: str) -> Callable[[list[int]], Awaitable[list[list[Row]]]]:
    async def load(ids: list[int]) -> list[list[Row]]:
        sql = Statement(dialect())
        grouped: dict[int, list[Row]] = defaultdict(list)
        for row in await sql.rows(statement.format(ids=sql.each(ids))):
            grouped[row[0]].append(row)
        return [grouped.get(number, []) for number in ids]

    return load


async def folders_of_account(context: Context, account_id: int) -> list[Row]:
    """Every folder of an account the caller reads already, by name."""
    loader = _loader(context, "folders_of_account", _grouped(FOLDERS_OF_ACCOUNTS))
    return await loader.load(account_id)


async def attachments_of(context: Context, message_id: int) -> list[Row]:
    loader = _loader(context, "attachments_of", _grouped(ATTACHMENTS_OF_MESSAGES))
    return await loader.load(message_id)


async def account_of(context: Context, account_id: int) -> AccountRow | None:
    """An account the caller reads already (the account of a visible message, thread...)."""

    async def load(ids: list[int]) -> list[AccountRow | None]:
        rows = {row.id: row for row in await AccountRow.filter(id__in=ids)}
        return [rows.get(number) for number in ids]

    return await _loader(context, "account_by_id", load).load(account_id)


async def content_of(context: Context, ref: MessageRef) -> Content:
    """Bodies and headers, from the cache or fetched through (once per message per request)."""
    return await _loader(context, "content", message_content.load_contents).load(ref)


async def raw_mime_of(context: Context, message_id: MessageId) -> bytes | None:
    async def load(ids: list[MessageId]) -> list[bytes | None]:
        found = await message_content.load_raw_mime(ids)
        return [found.get(number) for number in ids]

    return await _loader(context, "raw_mime", load).load(message_id)


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One page of one parent's list: ``parent`` fills ``condition``'s ``{}``."""

    listing: Listing
    condition: str
    parent: int
    criteria: Criteria
    page: PageRequest | None
    # The loader hashes a key several times; the criteria and page are dataclasses whose
    # hash walks every field each time.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.listing, self.condition, self.parent, self.criteria, self.page)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash


def _batches(keys: Sequence[WindowKey]) -> dict[tuple[Any, ...], list[WindowKey]]:
    groups: dict[tuple[Any, ...], list[WindowKey]] = defaultdict(list)
    for key in keys:
        groups[(key.listing, key.condition, key.criteria, key.page)].append(key)
    return groups


def _branch(key: WindowKey) -> Branch:
    def condition(sql: Statement) -> str:
        return key.condition.format(sql(key.parent))

    return Branch(key.parent, condition)


def _branches(keys: Sequence[WindowKey]) -> list[Branch]:
    return [_branch(key) for key in dict.fromkeys(keys)]


async def _load_windows(keys: list[WindowKey]) -> list[list[Row]]:
    found: dict[WindowKey, list[Row]] = {}
    for group in _batches(keys).values():
        first = group[0]
        assert first.page is not None
        rows = await fetch_windows(
            first.listing, _branches(group), first.criteria.where, first.page
        )
        for key in group:
            found[key] = rows[key.parent]
    return [found[key] for key in keys]


async def _load_counts(keys: list[WindowKey]) -> list[int]:
    found: dict[WindowKey, int] = {}
    for group in _batches(keys).values():
        first = group[0]
        counts = await count_rows(first.listing, _branches(group), first.criteria.where)
        for key in group:
            found[key] = counts[key.parent]
    return [found[key] for key in keys]


async def window_of(context: Context, key: WindowKey) -> list[Row]:
    """The rows of one parent's page (fetch order, one extra row), batched across parents."""
    return await _loader(context, "windows", _load_windows).load(key)


async def count_of(context: Context, key: WindowKey) -> int:
    return await _loader(context, "counts", _load_counts).load(key)
