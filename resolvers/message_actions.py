"""Mutations that act on mail: read, star, labels, moves, archive, trash, permanent deletion.

Each needs ``messages:modify`` and goes through ``app.services.message_actions``, which asks the
provider and updates the cache from its answer (DESIGN.md: resolvers never talk to a provider).
Messages and folders outside the accounts the token may touch are ``NOT_FOUND``, as are ids of
another type. The answer lists the messages as the cache now holds them (a deleted one is
absent); a provider failure is a ``MutationError`` with code ``PROVIDER_ERROR``.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.services.errors import ServiceError
from app.services.message_actions import ActionRequest, act_on_messages
from app.types import Action
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.messages import Message, find_message
from resolvers.owner import MutationError, MutationErrorCode
from resolvers.permissions import requires
from resolvers.tenancy import readable_accounts
from sync.providers.actions import ActionKind


@strawberry.type(description="The messages an action was performed on.")
class MessagesUpdated:
    ids: list[strawberry.ID] = strawberry.field(description="Every message acted on.")
    messages: list[Message] = strawberry.field(
        description="Those still in the cache, as it now holds them (not deleted ones)."
    )


MessageActionResult = Annotated[
    MessagesUpdated | MutationError, strawberry.union("MessageActionResult")
]


class _Refused(Exception):
    def __init__(self, error: MutationError) -> None:
        self.error = error


def _numbers(ids: list[strawberry.ID], type_name: str, field: str) -> list[int]:
    numbers = []
    for global_id in ids:
        number = decode_typed(global_id, type_name)
        if number is None:
            raise _Refused(
                MutationError(
                    code=MutationErrorCode.NOT_FOUND,
                    message=f"{type_name.lower()} not found",
                    field=field,
                )
            )
        numbers.append(number)
    return numbers


async def _perform(
    info: strawberry.Info[Context, None],
    kind: ActionKind,
    ids: list[strawberry.ID],
    *,
    flag: bool = True,
    folder_id: strawberry.ID | None = None,
    label_ids: list[strawberry.ID] | None = None,
    remove: bool = False,
) -> MessageActionResult:
    try:
        numbers = _numbers(ids, "Message", "ids")
        labels = _numbers(label_ids or [], "Folder", "labelIds")
        folder = None if folder_id is None else _numbers([folder_id], "Folder", "folderId")[0]
    except _Refused as refused:
        return refused.error
    request = ActionRequest(
        kind,
        numbers,
        flag=flag,
        folder_id=folder,
        add_label_ids=() if remove else labels,
        remove_label_ids=labels if remove else (),
    )
    try:
        done = await act_on_messages(await readable_accounts(info.context), request)
    except ServiceError as error:
        return MutationError.from_service(error)
    messages = [found for number in done if (found := await find_message(info, number))]
    return MessagesUpdated(
        ids=[strawberry.ID(encode_id("Message", number)) for number in done], messages=messages
    )


_MODIFY = requires(Action.MESSAGES_MODIFY)


@strawberry.type
class MessageActionMutation:
    @strawberry.mutation(extensions=_MODIFY, description="Mark messages read (or unread).")
    async def mark_read(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID], read: bool = True
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.MARK_READ, ids, flag=read)

    @strawberry.mutation(extensions=_MODIFY, description="Star (flag) messages, or unstar them.")
    async def star(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID], starred: bool = True
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.STAR, ids, flag=starred)

    @strawberry.mutation(extensions=_MODIFY, description="Add labels to messages (Gmail only).")
    async def add_labels(
        self,
        info: strawberry.Info[Context, None],
        ids: list[strawberry.ID],
        label_ids: list[strawberry.ID],
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.CHANGE_LABELS, ids, label_ids=label_ids)

    @strawberry.mutation(
        extensions=_MODIFY, description="Remove labels from messages (Gmail only)."
    )
    async def remove_labels(
        self,
        info: strawberry.Info[Context, None],
        ids: list[strawberry.ID],
        label_ids: list[strawberry.ID],
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.CHANGE_LABELS, ids, label_ids=label_ids, remove=True)

    @strawberry.mutation(
        extensions=_MODIFY,
        description="Move messages to a folder (Gmail: add that label, leave the inbox).",
    )
    async def move_messages(
        self,
        info: strawberry.Info[Context, None],
        ids: list[strawberry.ID],
        folder_id: strawberry.ID,
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.MOVE, ids, folder_id=folder_id)

    @strawberry.mutation(extensions=_MODIFY, description="Archive messages (out of the inbox).")
    async def archive(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.ARCHIVE, ids)

    @strawberry.mutation(extensions=_MODIFY, description="Move messages to the trash.")
    async def trash(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.TRASH, ids)

    @strawberry.mutation(
        extensions=_MODIFY, description="Delete messages for good at the provider (no trash)."
    )
    async def delete_permanently(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> MessageActionResult:
        return await _perform(info, ActionKind.DELETE, ids)
