"""Draft mutations: ``createDraft``, ``updateDraft``, ``deleteDraft`` and ``sendDraft``.

The first three need ``messages:drafts``; ``sendDraft`` sends mail, so it needs
``messages:send`` (like ``sendMessage``, and as idempotent: a retry with the same
``idempotencyKey`` answers the first result). They go through ``app.services.drafts``, which
checks the input as strictly as ``sendMessage`` (a draft may lack recipients and a body) and
updates the cache from the provider's answer. A draft's id may change when it is updated (the
provider stores new content as a new message): ``DraftSaved.id`` is the id to use next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Annotated

import strawberry

from app.services import drafts as service
from app.services.drafts import DraftRequest
from app.services.errors import ServiceError
from app.settings import Settings
from app.types import Action
from resolvers.context import Context
from resolvers.ids import decode_typed, encode_id
from resolvers.messages import Message, find_message
from resolvers.owner import MutationError, MutationErrorCode
from resolvers.permissions import requires
from resolvers.send import (
    DraftInput,
    MessageSent,
    SendMessageResult,
    draft_of,
    outgoing_attachments,
)
from resolvers.tenancy import readable_accounts


@strawberry.type(description="A draft as the provider saved it.")
class DraftSaved:
    id: strawberry.ID = strawberry.field(
        description="The draft's message id now (it changes when an update replaces it)."
    )
    draft: Message | None = strawberry.field(description="The draft as the cache now holds it.")


@strawberry.type(description="The draft was deleted at the provider and from the cache.")
class DraftDeleted:
    id: strawberry.ID


DraftResult = Annotated[DraftSaved | MutationError, strawberry.union("DraftResult")]
DeleteDraftResult = Annotated[DraftDeleted | MutationError, strawberry.union("DeleteDraftResult")]


def _not_found(field: str) -> MutationError:
    return MutationError(code=MutationErrorCode.NOT_FOUND, message="not found", field=field)


def _request(input: DraftInput) -> DraftRequest | MutationError:
    reply = None if input.reply_to_id is None else decode_typed(input.reply_to_id, "Message")
    if input.reply_to_id is not None and reply is None:
        return _not_found("replyToId")
    try:
        attachments = outgoing_attachments(input.attachments)
    except ServiceError as error:
        return MutationError.from_service(error)
    return DraftRequest(draft_of(input), reply, attachments)


SaveDraft = Callable[[Settings, Collection[int], int, DraftRequest], Awaitable[int]]


async def _save(
    info: strawberry.Info[Context, None],
    target: int | None,
    field: str,
    input: DraftInput,
    save: SaveDraft,
) -> DraftResult:
    """Create (``target`` an account) or update (``target`` a draft) through ``save``."""
    request = _request(input)
    if target is None:
        return _not_found(field)
    if isinstance(request, MutationError):
        return request
    try:
        accounts = await readable_accounts(info.context)
        number = await save(info.context.services.settings, accounts, target, request)
    except ServiceError as error:
        return MutationError.from_service(error)
    return DraftSaved(
        id=strawberry.ID(encode_id("Message", number)), draft=await find_message(info, number)
    )


_DRAFTS = requires(Action.MESSAGES_DRAFTS)


@strawberry.type
class DraftMutation:
    @strawberry.mutation(extensions=_DRAFTS, description="Save a new draft at the provider.")
    async def create_draft(
        self, info: strawberry.Info[Context, None], account_id: strawberry.ID, input: DraftInput
    ) -> DraftResult:
        account = decode_typed(account_id, "Account")
        return await _save(info, account, "accountId", input, service.create_draft)

    @strawberry.mutation(
        extensions=_DRAFTS, description="Replace the whole content of a draft at the provider."
    )
    async def update_draft(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, input: DraftInput
    ) -> DraftResult:
        return await _save(info, decode_typed(id, "Message"), "id", input, service.update_draft)

    @strawberry.mutation(extensions=_DRAFTS, description="Delete a draft at the provider.")
    async def delete_draft(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> DeleteDraftResult:
        number = decode_typed(id, "Message")
        if number is None:
            return _not_found("id")
        try:
            await service.delete_draft(await readable_accounts(info.context), number)
        except ServiceError as error:
            return MutationError.from_service(error)
        return DraftDeleted(id=id)

    @strawberry.mutation(
        extensions=requires(Action.MESSAGES_SEND),
        description="Send a draft as the provider holds it; at most once per idempotency key.",
    )
    async def send_draft(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, idempotency_key: str
    ) -> SendMessageResult:
        number = decode_typed(id, "Message")
        if number is None:
            return _not_found("id")
        settings = info.context.services.settings
        try:
            accounts = await readable_accounts(info.context)
            result = await service.send_draft(settings, accounts, number, idempotency_key)
        except ServiceError as error:
            return MutationError.from_service(error)
        return MessageSent.of(result)
