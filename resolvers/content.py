"""Message content as GraphQL shows it: bodies, headers, raw MIME and attachments.

Every field here needs ``messages:content`` (declared where ``Message`` lists them). Bodies
come from ``app.services.message_content`` through the per-request content loader, so each
message's body is read (or fetched through from the provider) at most once per request,
whichever of these fields ask for it.
"""

from __future__ import annotations

import base64

import strawberry

from app.services.message_content import BodySource, Content, MessageRef, UnavailableReason
from app.types import AccountId, MessageId
from resolvers.context import Context
from resolvers.ids import encode_id
from resolvers.loaders import attachments_of, content_of, raw_mime_of
from resolvers.sanitize import SafeHtml, sanitize_html

strawberry.enum(BodySource, description="Where a message's content came from.")
strawberry.enum(
    UnavailableReason,
    name="BodyUnavailableReason",
    description="Why a message's content is unavailable.",
)

ATTACHMENT_PATH = "/attachments/"


@strawberry.type(description="One header line of a message.")
class Header:
    name: str
    value: str


@strawberry.type(description="An attachment's metadata; its bytes come from `downloadUrl`.")
class Attachment:
    id: strawberry.ID
    filename: str
    content_type: str
    size: int
    content_id: str | None = strawberry.field(description="For inline images (`cid:` URLs).")
    inline: bool
    download_url: str = strawberry.field(
        description="GET with the same `Authorization: Bearer` token (messages:content)."
    )


async def content(info: strawberry.Info[Context, None], ref: MessageRef) -> Content:
    return await content_of(info.context, ref)


async def safe_html(info: strawberry.Info[Context, None], ref: MessageRef) -> SafeHtml | None:
    """The sanitised HTML body, computed once per message per request."""
    key = f"safe_html:{ref.message_id}"
    cached: SafeHtml | None = info.context.loaders.get(key)
    if cached is None:
        html = (await content(info, ref)).html_body
        if html is None:
            return None
        cached = sanitize_html(html)
        info.context.loaders[key] = cached
    return cached


async def raw_mime(info: strawberry.Info[Context, None], ref: MessageRef) -> str | None:
    """Base64 of the RFC 5322 bytes: the cached copy, else one fetched with the body."""
    data = await raw_mime_of(info.context, ref.message_id)
    if data is None:
        data = (await content(info, ref)).raw_mime
    return None if data is None else base64.b64encode(data).decode("ascii")


async def attachments(
    info: strawberry.Info[Context, None], message_id: MessageId
) -> list[Attachment]:
    base = info.context.services.settings.public_url.rstrip("/") + ATTACHMENT_PATH
    result = []
    for row in await attachments_of(info.context, message_id):
        _, number, _, filename, content_type, size, content_id, inline = row
        global_id = encode_id("Attachment", number)
        result.append(
            Attachment(
                id=strawberry.ID(global_id),
                filename=filename,
                content_type=content_type,
                size=size,
                content_id=content_id,
                inline=bool(inline),
                download_url=base + global_id,
            )
        )
    return result


def message_ref(message_id: int, account_id: int, provider_id: str) -> MessageRef:
    return MessageRef(MessageId(message_id), AccountId(account_id), provider_id)
