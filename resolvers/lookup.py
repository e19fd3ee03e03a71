"""``Query.node(id:)``: any object by its global id, with the caller's tenancy.

The scope needed depends on the type the id names (accounts:read for an Account,
messages:metadata for a Folder, Thread or Message) and is checked before any lookup, so the
answer never depends on whether the object exists. Unknown, malformed and foreign ids all
answer null.
"""

from __future__ import annotations

import strawberry

from app.types import Action
from resolvers.accounts import Account, find_account
from resolvers.context import Context
from resolvers.folders import find_folder
from resolvers.ids import decode_id
from resolvers.messages import find_message
from resolvers.node import Node
from resolvers.threads import find_thread

_SCOPES = {
    "Account": Action.ACCOUNTS_READ,
    "Folder": Action.MESSAGES_METADATA,
    "Thread": Action.MESSAGES_METADATA,
    "Message": Action.MESSAGES_METADATA,
}


async def _find(
    info: strawberry.Info[Context, None], global_id: str, type_name: str, number: int
) -> Node | None:
    if type_name == "Message":
        return await find_message(info, number)
    if type_name == "Thread":
        return await find_thread(info, number)
    if type_name == "Folder":
        return await find_folder(info, number)
    account = await find_account(info.context.require_principal(), global_id)
    return None if account is None else Account.from_row(account)


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id, or null. Needs the scope of its type: "
        "accounts:read for an Account, messages:metadata for a Folder, Thread or Message."
    )
    async def node(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Node | None:
        decoded = decode_id(id)
        if decoded is None or decoded[0] not in _SCOPES:
            return None
        type_name, number = decoded
        info.context.require(_SCOPES[type_name])
        return await _find(info, id, type_name, number)
