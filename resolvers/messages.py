"""Messages: the ``Message`` type, its connection, and the root fields that list and find them.

Scopes: the fields that lead to messages need ``messages:metadata``; once a message is
reached its envelope, flags, labels and thread need nothing more (one check per list, not
one per field). Content fields need ``messages:content`` each, and ``account`` needs
``accounts:read``. Rows come from raw SQL (``resolvers.rows``), never model objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.services.message_content import BodySource, MessageRef, UnavailableReason
from app.types import Action, MessageId
from resolvers import accounts, content, folders, threads
from resolvers.addresses import EmailAddress, addresses
from resolvers.context import Context
from resolvers.filters import MessageCriteria, MessageFilter
from resolvers.ids import decode_typed, encode_id
from resolvers.lists import account_branches, count_rows, fetch_merged
from resolvers.loaders import WindowKey, count_of, message_row, window_of
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
from resolvers.rows import MESSAGES
from resolvers.sql import Row, as_datetime, as_json
from resolvers.tenancy import readable_accounts

if TYPE_CHECKING:
    from resolvers.accounts import Account
    from resolvers.folders import Folder
    from resolvers.threads import Thread

CONTENT = requires(Action.MESSAGES_CONTENT)


@strawberry.type(
    description="A cached message. Reached through a field that needs messages:metadata; "
    "content fields need messages:content."
)
class Message(Node):
    id: strawberry.ID
    subject: str
    from_: list[EmailAddress] = strawberry.field(name="from")
    to: list[EmailAddress]
    date: datetime
    snippet: str
    unread: bool
    starred: bool
    draft: bool
    size: int = strawberry.field(description="Size in bytes, as the provider reports it.")
    has_attachments: bool
    message_id: str | None = strawberry.field(description="The Message-ID header.")
    in_reply_to: str | None = strawberry.field(description="The In-Reply-To header.")
    # A plain list, not a resolver: on a page of 50 the per-field resolver cost outweighs
    # decoding label ids that a query does not ask for.
    labels: list[Annotated[Folder, strawberry.lazy("resolvers.folders")]] = strawberry.field(
        description="The folders (Graph, IMAP) or labels (Gmail) it is in."
    )
    row_id: strawberry.Private[int]
    account_id: strawberry.Private[int]
    thread_id: strawberry.Private[int | None]
    provider_id: strawberry.Private[str]
    # JSON columns that not every query asks for, decoded when asked.
    cc_json: strawberry.Private[Any]
    bcc_json: strawberry.Private[Any]
    reply_to_json: strawberry.Private[Any]
    references_json: strawberry.Private[Any]

    @classmethod
    def from_row(cls, row: Row, account_folders: dict[str, Folder]) -> Message:
        """A message from a row of ``rows.MESSAGE_COLUMNS`` (after the tag column), with its
        account's folders by provider id."""
        (
            _,
            date,
            number,
            account_id,
            thread_id,
            provider_id,
            subject,
            sender,
            recipients,
            cc,
            bcc,
            reply_to,
            snippet,
            unread,
            starred,
            draft,
            label_ids,
            has_attachments,
            size,
            message_id,
            in_reply_to,
            references,
        ) = row
        return cls(
            id=strawberry.ID(encode_id("Message", number)),
            subject=subject,
            from_=addresses(sender),
            to=addresses(recipients),
            date=as_datetime(date),
            snippet=snippet,
            unread=bool(unread),
            starred=bool(starred),
            draft=bool(draft),
            has_attachments=bool(has_attachments),
            size=size,
            message_id=message_id,
            in_reply_to=in_reply_to,
            row_id=number,
            account_id=account_id,
            thread_id=thread_id,
            provider_id=provider_id,
            cc_json=cc,
            bcc_json=bcc,
            reply_to_json=reply_to,
            references_json=references,
            labels=[
                account_folders[pid] for pid in as_json(label_ids) or () if pid in account_folders
            ],
        )

    @strawberry.field
    def cc(self) -> list[EmailAddress]:
        return addresses(self.cc_json)

    @strawberry.field
    def bcc(self) -> list[EmailAddress]:
        return addresses(self.bcc_json)

    @strawberry.field
    def reply_to(self) -> list[EmailAddress]:
        return addresses(self.reply_to_json)

    @strawberry.field(description="Message-IDs of the References header, oldest first.")
    def references(self) -> list[str]:
        return [str(item) for item in as_json(self.references_json) or ()]

    @strawberry.field(description="The conversation it belongs to.")
    async def thread(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Thread, strawberry.lazy("resolvers.threads")] | None:
        if self.thread_id is None:
            return None
        return await threads.find_thread(info, self.thread_id)

    @strawberry.field(
        extensions=requires(Action.ACCOUNTS_READ), description="The account it is cached for."
    )
    async def account(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Account, strawberry.lazy("resolvers.accounts")]:
        return await accounts.account_of(info, self.account_id)

    def _ref(self) -> MessageRef:
        return content.message_ref(self.row_id, self.account_id, self.provider_id)

    @strawberry.field(
        extensions=CONTENT,
        description="Where the content came from: cache, provider, or unavailable.",
    )
    async def body_source(self, info: strawberry.Info[Context, None]) -> BodySource:
        return (await content.content(info, self._ref())).source

    @strawberry.field(extensions=CONTENT, description="Why the content is unavailable, if so.")
    async def body_unavailable_reason(
        self, info: strawberry.Info[Context, None]
    ) -> UnavailableReason | None:
        return (await content.content(info, self._ref())).unavailable_reason

    @strawberry.field(extensions=CONTENT, description="The text/plain body.")
    async def text_body(self, info: strawberry.Info[Context, None]) -> str | None:
        return (await content.content(info, self._ref())).text_body

    @strawberry.field(
        extensions=CONTENT,
        description="The HTML body, sanitised: no scripts, handlers, forms, frames, style "
        "sheets or foreign URL schemes; remote images held back in `data-remote-src`.",
    )
    async def html_body(self, info: strawberry.Info[Context, None]) -> str | None:
        safe = await content.safe_html(info, self._ref())
        return None if safe is None else safe.html

    @strawberry.field(
        extensions=CONTENT, description="Whether `htmlBody` holds back remote images."
    )
    async def has_remote_images(self, info: strawberry.Info[Context, None]) -> bool:
        safe = await content.safe_html(info, self._ref())
        return safe is not None and safe.has_remote_images

    @strawberry.field(
        extensions=CONTENT,
        description="The HTML body as received: render it only in a sandbox of your own.",
    )
    async def raw_html_body(self, info: strawberry.Info[Context, None]) -> str | None:
        return (await content.content(info, self._ref())).html_body

    @strawberry.field(
        extensions=CONTENT, description="Base64 of the raw RFC 5322 message, when available."
    )
    async def raw_mime(self, info: strawberry.Info[Context, None]) -> str | None:
        return await content.raw_mime(info, self._ref())

    @strawberry.field(extensions=CONTENT, description="Every header line, in order.")
    async def headers(self, info: strawberry.Info[Context, None]) -> list[content.Header]:
        found = (await content.content(info, self._ref())).headers
        return [content.Header(name=name, value=value) for name, value in found]

    @strawberry.field(extensions=CONTENT, description="Attachments, with download URLs.")
    async def attachments(self, info: strawberry.Info[Context, None]) -> list[content.Attachment]:
        return await content.attachments(info, MessageId(self.row_id))


@strawberry.type
class MessageEdge:
    cursor: str
    node: Message


@strawberry.type(description="A page of messages, newest first.")
class MessageConnection:
    nodes: list[Message]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def edges(self) -> list[MessageEdge]:
        return [MessageEdge(cursor=encode_cursor_of(node), node=node) for node in self.nodes]

    @strawberry.field(description="Messages in the whole list: a count query, run on request.")
    async def total_count(self) -> int:
        return await self.count()


def encode_cursor_of(node: Message) -> str:
    return encode_cursor(MESSAGES.kind, (node.date, node.row_id))


async def build_messages(info: strawberry.Info[Context, None], rows: list[Row]) -> list[Message]:
    """Messages from rows, with their accounts' folders loaded first (one batched query)."""
    accounts = list({row[3] for row in rows})
    if len(accounts) == 1:  # one parent's messages: awaited here, without a task for a gather
        maps = [await folders.folders_by_provider_id(info, accounts[0])]
    else:
        maps = await asyncio.gather(*(folders.folders_by_provider_id(info, a) for a in accounts))
    by_account = dict(zip(accounts, maps, strict=True))
    return [Message.from_row(row, by_account[row[3]]) for row in rows]


async def connection(
    info: strawberry.Info[Context, None],
    page: PageRequest,
    fetched: list[Row],
    count: Callable[[], Awaitable[int]],
) -> MessageConnection:
    result = window(page, fetched)
    nodes = await build_messages(info, result.items)
    keys = [(node.date, node.row_id) for node in nodes]
    return MessageConnection(
        nodes=nodes, page_info=page_info(MESSAGES.kind, keys, result), count=count
    )


def page_of(
    info: strawberry.Info[Context, None],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return page_request(info.context.services.settings, MESSAGES.kind, first, after, last, before)


def criteria_of(filter: MessageFilter | None) -> MessageCriteria:
    return MessageCriteria() if filter is None else filter.criteria()


async def messages_of(
    info: strawberry.Info[Context, None],
    condition: str,
    parent: int,
    criteria: MessageCriteria,
    page: PageRequest,
) -> MessageConnection:
    """A page of one parent's messages (``condition`` with the parent id in ``{}``),
    batched with the same page of the other parents in the request."""
    key = WindowKey(MESSAGES, condition, parent, criteria, page)
    rows = await window_of(info.context, key)
    return await connection(
        info, page, rows, lambda: count_of(info.context, replace(key, page=None))
    )


async def list_messages(
    info: strawberry.Info[Context, None], criteria: MessageCriteria, page: PageRequest
) -> MessageConnection:
    """A page of messages over every readable account (or the one the filter names)."""
    account_ids = await readable_accounts(info.context, criteria.account_id)
    branches = account_branches("m.account_id", account_ids)
    rest = replace(criteria, account_id=None)
    rows = await fetch_merged(MESSAGES, branches, rest.where, page)

    async def count() -> int:
        return sum((await count_rows(MESSAGES, branches, rest.where)).values())

    return await connection(info, page, rows, count)


async def find_message(info: strawberry.Info[Context, None], number: int) -> Message | None:
    row = await message_row(info.context, number)
    return None if row is None else (await build_messages(info, [row]))[0]


@strawberry.type
class MessageQueries:
    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="Messages of the readable accounts, newest first.",
    )
    async def messages(
        self,
        info: strawberry.Info[Context, None],
        filter: MessageFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection:
        page = page_of(info, first, after, last, before)
        return await list_messages(info, criteria_of(filter), page)

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="One message, or null when unknown or not readable.",
    )
    async def message(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Message | None:
        number = decode_typed(id, "Message")
        return None if number is None else await find_message(info, number)
