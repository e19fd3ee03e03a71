"""Folders and labels: the ``Folder`` type and the root fields that list and find them.

One type serves Graph/IMAP folders and Gmail labels; ``role`` says what a folder is for,
whatever the provider calls it. Folders need ``messages:metadata``. An account's folders are
read once per request (one statement for all accounts in it) and serve ``Message.labels`` too.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.types import Action, FolderRole
from resolvers import accounts, messages
from resolvers.context import Context
from resolvers.filters import MessageFilter
from resolvers.ids import decode_typed, encode_id
from resolvers.loaders import folder_row, folders_of_account
from resolvers.node import Node
from resolvers.permissions import requires
from resolvers.sql import Row
from resolvers.tenancy import readable_accounts

if TYPE_CHECKING:
    from resolvers.accounts import Account
    from resolvers.messages import MessageConnection

strawberry.enum(FolderRole, description="What a folder or label is for.")

IN_FOLDER = "m.id IN (SELECT message_id FROM message_labels WHERE folder_id = {})"


@strawberry.type(description="A folder (Graph, IMAP) or label (Gmail) of an account.")
class Folder(Node):
    id: strawberry.ID
    name: str
    role: FolderRole
    total_count: int = strawberry.field(description="Messages in it, as the provider counts.")
    unread_count: int = strawberry.field(description="Unread messages, as the provider counts.")
    row_id: strawberry.Private[int]
    account_id: strawberry.Private[int]
    parent_provider_id: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: Row) -> Folder:
        """A folder from a row of ``rows.FOLDER_COLUMNS`` (after the tag column)."""
        _, number, account_id, _, name, role, parent, total, unread = row
        return cls(
            id=strawberry.ID(encode_id("Folder", number)),
            name=name,
            role=FolderRole(role),
            total_count=total,
            unread_count=unread,
            row_id=number,
            account_id=account_id,
            parent_provider_id=parent,
        )

    @strawberry.field(description="The folder it is nested in, if any.")
    async def parent(self, info: strawberry.Info[Context, None]) -> Folder | None:
        if self.parent_provider_id is None:
            return None
        for row in await folders_of_account(info.context, self.account_id):
            if row[3] == self.parent_provider_id:
                return Folder.from_row(row)
        return None

    @strawberry.field(description="Its messages, newest first.")
    async def messages(
        self,
        info: strawberry.Info[Context, None],
        filter: MessageFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Annotated[MessageConnection, strawberry.lazy("resolvers.messages")]:
        page = messages.page_of(info, first, after, last, before)
        criteria = messages.criteria_of(filter)
        return await messages.messages_of(info, IN_FOLDER, self.row_id, criteria, page)

    @strawberry.field(
        extensions=requires(Action.ACCOUNTS_READ), description="The account it belongs to."
    )
    async def account(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Account, strawberry.lazy("resolvers.accounts")]:
        return await accounts.account_of(info, self.account_id)


async def folders_by_provider_id(
    info: strawberry.Info[Context, None], account_id: int
) -> dict[str, Folder]:
    """An account's folders by the provider's id for them, built once per request: every
    message of the account shares them for its labels."""
    key = f"folders_by_provider_id:{account_id}"
    found: dict[str, Folder] | None = info.context.loaders.get(key)
    if found is None:
        rows = await folders_of_account(info.context, account_id)
        # Concurrent callers (the threads of a page) share the load; the first one back builds.
        found = info.context.loaders.get(key)
        if found is None:
            found = {row[3]: Folder.from_row(row) for row in rows}
            info.context.loaders[key] = found
    return found


async def folders_of(info: strawberry.Info[Context, None], account_id: int) -> list[Folder]:
    """The folders of an account the caller reads, by name."""
    return [Folder.from_row(row) for row in await folders_of_account(info.context, account_id)]


async def find_folder(info: strawberry.Info[Context, None], number: int) -> Folder | None:
    row = await folder_row(info.context, number)
    return None if row is None else Folder.from_row(row)


@strawberry.type
class FolderQueries:
    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="Folders and labels of the readable accounts (or of one), by name.",
    )
    async def folders(
        self, info: strawberry.Info[Context, None], account_id: strawberry.ID | None = None
    ) -> list[Folder]:
        wanted = None if account_id is None else decode_typed(account_id, "Account") or 0
        numbers = await readable_accounts(info.context, wanted)
        found = await asyncio.gather(*(folders_of(info, number) for number in numbers))
        return [folder for group in found for folder in group]

    @strawberry.field(
        extensions=requires(Action.MESSAGES_METADATA),
        description="One folder or label, or null when unknown or not readable.",
    )
    async def folder(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Folder | None:
        number = decode_typed(id, "Folder")
        return None if number is None else await find_folder(info, number)
