"""Threads: the ``Thread`` type, its connection, and the root fields that list and find them.

A thread is reached through a field that needs ``messages:metadata``; its messages are a
connection batched across threads (the latest N of 25 threads cost one statement).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.types import Action
from resolvers import accounts, messages
from resolvers.addresses import EmailAddress, addresses
from resolvers.context import Context
from resolvers.filters import MessageCriteria, ThreadCriteria, ThreadFilter
from resolvers.ids import decode_typed, encode_id
from resolvers.lists import account_branches, count_rows, fetch_merged
from resolvers.loaders import WindowKey, count_of, thread_row, window_of
from resolvers.node import Node
from resolvers.pagination import (
    PageInfo,
    PageRequest,
    encode_cursor,
    page_info,
    page_request,
    window,
)
from resolvers.permissions import requires
from resolvers.rows import THREADS
from resolvers.sql import Row, as_datetime
from resolvers.tenancy import readable_accounts

if TYPE_CHECKING:
    from resolvers.accounts import Account
    from resolvers.messages import MessageConnection


@strawberry.type(description="A conversation, as the provider groups it.")
class Thread(Node):
    id: strawberry.ID
    subject: str
    snippet: str
    participants: list[EmailAddress]
    last_message_at: datetime
    message_count: int
    unread_count: int
    row_id: strawberry.Private[int]
    account_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row) -> Thread:
        """A thread from a row of ``rows.THREAD_COLUMNS`` (after the tag column)."""
        _, last, number, account_id, subject, snippet, people, total, unread = row
        return cls(
            id=strawberry.ID(encode_id("Thread", number)),
            subject=subject,
            snippet=snippet,
            participants=addresses(people),
            last_message_at=as_datetime(last),
            message_count=total,
            unread_count=unread,
            row_id=number,
            account_id=account_id,
        )

    @strawberry.field(description="Its messages, newest first.")
    async def messages(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Annotated[MessageConnection, strawberry.lazy("resolvers.messages")]:
        page = messages.page_of(info, first, after, last, before)
        return await messages.messages_of(
            info, "m.thread_id = {}", self.row_id, MessageCriteria(), page
        )

    @strawberry.field(
        extensions=requires(Action.ACCOUNTS_READ), description="The account it is cached for."
    )
    async def account(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Account, strawberry.lazy("resolvers.accounts")]:
        return await accounts.account_of(info, self.account_id)


@strawberry.type
class ThreadEdge:
    cursor: str
    node: Thread


@strawberry.type(description="A page of threads, latest activity first.")
class ThreadConnection:
    nodes: list[Thread]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def edges(self) -> list[ThreadEdge]:
        return [
            ThreadEdge(cursor=encode_cursor(THREADS.kind, (n.last_message_at, n.row_id)), node=n)
            for n in self.nodes
        ]

    @strawberry.field(description="Threads in the whole list: a count query, run on request.")
    async def total_count(self) -> int:
        return await self.count()


def _connection(
    page: PageRequest, fetched: list[Row], count: Callable[[], Awaitable[int]]
) -> ThreadConnection:
    result = window(page, fetched)
    nodes = [Thread.from_row(row) for row in result.items]
    keys = [(node.last_message_at, node.row_id) for node in nodes]
    return ThreadConnection(
        nodes=nodes, page_info=page_info(THREADS.kind, keys, result), count=count
    )


def criteria_of(filter: ThreadFilter | None) -> ThreadCriteria:
    return ThreadCriteria() if filter is None else filter.criteria()


def page_of(
    info: strawberry.Info[Context, None],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return page_request(info.context.services.settings, THREADS.kind, first, after, last, before)


async def threads_of(
    info: strawberry.Info[Context, None],
    condition: str,
    parent: int,
    criteria: ThreadCriteria,
    page: PageRequest,
) -> ThreadConnection:
    """A page of one parent's threads (``condition`` with the parent id in ``{}``), batched
    with the same page of the other parents in the request."""
    key = WindowKey(THREADS, condition, parent, criteria, page)
    rows = await window_of(info.context, key)
    return _connection(page, rows, lambda: count_of(info.context, replace(key, page=None)))


async def find_thread(info: strawberry.Info[Context, None], number: int) -> Thread | None:
    row = await thread_row(info.context, number)
    return None if row is None else Thread.from_row(row)


@strawberry.type
class ThreadQueries:
    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="Threads of the readable accounts, latest activity first.",
    )
    async def threads(
        self,
        info: strawberry.Info[Context, None],
        filter: ThreadFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ThreadConnection:
        page = page_of(info, first, after, last, before)
        criteria = criteria_of(filter)
        account_ids = await readable_accounts(info.context, criteria.account_id)
        branches = account_branches("t.account_id", account_ids)
        rest = replace(criteria, account_id=None)
        rows = await fetch_merged(THREADS, branches, rest.where, page)

        async def count() -> int:
            return sum((await count_rows(THREADS, branches, rest.where)).values())

        return _connection(page, rows, count)

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="One thread, or null when unknown or not readable.",
    )
    async def thread(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Thread | None:
        number = decode_typed(id, "Thread")
        return None if number is None else await find_thread(info, number)
