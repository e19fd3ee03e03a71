"""``sendMessage``: a new message or a reply, from one account, at most once per idempotency key.

Needs ``messages:send``. The use case (``app.services.send``) refuses bad input before anything
reaches the provider: header injection (CR/LF) in the subject, names or addresses, addresses
that are not one strict addr-spec each, oversize subject or bodies, more than 100 recipients.
Each refusal is a ``MutationError`` (``BAD_USER_INPUT``) naming the field. A retried send with the
same ``idempotencyKey`` answers the first result (``duplicate: true``) and sends nothing.
Attachments (``AttachmentInput``: base64 content, or an attachment of a message of the same
account) are bounded in count and size (``PAYLOAD_TOO_LARGE``). The input types and their
conversion serve ``resolvers.drafts`` too.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.services.compose import Draft, Recipient
from app.services.drafts_attachments import AttachmentInput as OutgoingAttachment
from app.services.errors import InvalidInput, ServiceError
from app.services.send import SendRequest, SendResult, send_message
from app.types import Action
from resolvers.context import Context
from resolvers.ids import decode_typed
from resolvers.owner import MutationError, MutationErrorCode
from resolvers.permissions import requires
from resolvers.tenancy import readable_accounts


@strawberry.input(description="One recipient.")
class AddressInput:
    email: str
    name: str = ""


@strawberry.input(
    description="A file to attach: `content` (base64) with `filename` and `contentType`, or "
    "`attachmentId`, an attachment of a message of the same account (its name and type are "
    "kept unless given)."
)
class AttachmentInput:
    filename: str | None = None
    content_type: str | None = None
    content: str | None = strawberry.field(default=None, description="The bytes, base64.")
    attachment_id: strawberry.ID | None = None


@strawberry.input(description="A message to send; give a text body, an HTML body or both.")
class SendMessageInput:
    account_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="Chosen by the client; a retry with the same key never sends twice."
    )
    to: list[AddressInput] = strawberry.field(default_factory=list)
    cc: list[AddressInput] = strawberry.field(default_factory=list)
    bcc: list[AddressInput] = strawberry.field(default_factory=list)
    subject: str = ""
    text_body: str | None = None
    html_body: str | None = None
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="The message this answers (same account): threads it."
    )
    attachments: list[AttachmentInput] = strawberry.field(default_factory=list)


@strawberry.input(
    description="The whole content of a draft (an update replaces all of it). Recipients and "
    "a body may be missing; what is given is checked as strictly as for sendMessage."
)
class DraftInput:
    to: list[AddressInput] = strawberry.field(default_factory=list)
    cc: list[AddressInput] = strawberry.field(default_factory=list)
    bcc: list[AddressInput] = strawberry.field(default_factory=list)
    subject: str = ""
    text_body: str | None = None
    html_body: str | None = None
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The message this draft answers (same account): threads it. Omitted on an "
        "update, a reply draft keeps what it answers.",
    )
    attachments: list[AttachmentInput] = strawberry.field(default_factory=list)


@strawberry.type(description="A message the provider accepted for sending.")
class MessageSent:
    message_id_header: str = strawberry.field(description="Its Message-ID header.")
    provider_message_id: str | None = strawberry.field(
        description="The provider's id of the sent copy, when the provider names it."
    )
    duplicate: bool = strawberry.field(
        description="True when an earlier send with this idempotency key is the one answered."
    )
    sync_requested: bool = strawberry.field(
        description="True when the provider answered without the sent copy (Microsoft): the "
        "account's sync was requested, and the copy reaches the cache with it."
    )

    @classmethod
    def of(cls, result: SendResult) -> MessageSent:
        return cls(
            message_id_header=result.message_id_header,
            provider_message_id=result.provider_message_id,
            duplicate=result.duplicate,
            sync_requested=result.sync_requested,
        )


SendMessageResult = Annotated[MessageSent | MutationError, strawberry.union("SendMessageResult")]


def _recipients(values: list[AddressInput]) -> list[Recipient]:
    return [Recipient(value.email, value.name) for value in values]


def outgoing_attachments(values: list[AttachmentInput]) -> list[OutgoingAttachment]:
    """The use case's form of ``values``; ``InvalidInput`` for an id of another type."""
    converted = []
    for index, value in enumerate(values):
        number = None
        if value.attachment_id is not None:
            number = decode_typed(value.attachment_id, "Attachment")
            if number is None:
                raise InvalidInput(
                    "attachment not found", field=f"attachments[{index}].attachmentId"
                )
        converted.append(
            OutgoingAttachment(value.filename, value.content_type, value.content, number)
        )
    return converted


def draft_of(input: SendMessageInput | DraftInput) -> Draft:
    return Draft(
        to=_recipients(input.to),
        cc=_recipients(input.cc),
        bcc=_recipients(input.bcc),
        subject=input.subject,
        text_body=input.text_body,
        html_body=input.html_body,
    )


@strawberry.type
class SendMutation:
    @strawberry.mutation(
        extensions=requires(Action.MESSAGES_SEND), description="Send a new message or a reply."
    )
    async def send_message(
        self, info: strawberry.Info[Context, None], input: SendMessageInput
    ) -> SendMessageResult:
        account = decode_typed(input.account_id, "Account")
        reply = None if input.reply_to_id is None else decode_typed(input.reply_to_id, "Message")
        if account is None or (input.reply_to_id is not None and reply is None):
            return MutationError(
                code=MutationErrorCode.NOT_FOUND,
                message="not found",
                field="accountId" if account is None else "replyToId",
            )
        try:
            attachments = outgoing_attachments(input.attachments)
            request = SendRequest(
                account, draft_of(input), input.idempotency_key, reply, attachments
            )
            result = await send_message(
                info.context.services.settings, await readable_accounts(info.context), request
            )
        except ServiceError as error:
            return MutationError.from_service(error)
        return MessageSent.of(result)
