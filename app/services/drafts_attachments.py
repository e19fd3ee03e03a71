"""Attachments of outgoing mail (sends and drafts): decoded or fetched, and bounded.

An attachment comes either inline (file name, content type, base64 content) or as a reference
to an attachment of a cached message of the same account (forwarding a file): its bytes then
come from the provider through the registered ``ContentFetcher``, and its cached name and type
are used unless the input gives others. Nothing here talks to a provider directly.

Limits (``Settings``): ``max_attachments`` per message, ``max_attachment_bytes`` per file
(decoded; checked on the base64 length before decoding, and on a referenced attachment's cached
size before fetching), and the whole MIME message (``app.services.compose.check_message_size``).
Over a limit is ``TooLarge`` (``PAYLOAD_TOO_LARGE``); bad base64 or an unknown reference is
``InvalidInput`` naming the field (``attachments[1].content``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.models import Attachment
from app.services.attachments import RECORD_FIELDS, attachment_record
from app.services.compose import AttachmentPart, TooLarge
from app.services.errors import InvalidInput
from app.services.message_actions import ActionFailed
from app.services.message_content import content_fetcher
from app.settings import Settings
from app.types import AccountId


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    """One attachment as the caller gives it: ``content_base64`` or ``attachment_id``."""

    filename: str | None = None
    content_type: str | None = None
    content_base64: str | None = None
    attachment_id: int | None = None


async def resolve_attachments(
    settings: Settings, account_id: int, inputs: Sequence[AttachmentInput]
) -> list[AttachmentPart]:
    """The parts to attach, in order; refuses before fetching or decoding anything too big."""
    if len(inputs) > settings.max_attachments:
        raise TooLarge(f"at most {settings.max_attachments} attachments", field="attachments")
    return [
        await _resolve(settings.max_attachment_bytes, account_id, item, f"attachments[{index}]")
        for index, item in enumerate(inputs)
    ]


async def _resolve(
    limit: int, account_id: int, item: AttachmentInput, field: str
) -> AttachmentPart:
    if (item.content_base64 is None) == (item.attachment_id is None):
        raise InvalidInput("give either content or attachmentId", field=field)
    if item.content_base64 is not None:
        if item.filename is None or item.content_type is None:
            raise InvalidInput("give a filename and a contentType", field=field)
        return AttachmentPart(
            item.filename, item.content_type, _decoded(item.content_base64, limit, field)
        )
    rows = await Attachment.filter(id=item.attachment_id, message__account_id=account_id).values(
        *RECORD_FIELDS, provider_message_id="message__provider_id"
    )
    if not rows:
        raise InvalidInput("attachment not found in this account", field=f"{field}.attachmentId")
    row = rows[0]
    if row["size"] > limit:
        raise TooLarge(f"at most {limit} bytes per attachment", field=f"{field}.attachmentId")
    content = await _fetched(AccountId(account_id), row, limit, field)
    return AttachmentPart(
        item.filename or row["filename"] or "attachment",
        item.content_type or row["content_type"] or "application/octet-stream",
        content,
    )


def _decoded(text: str, limit: int, field: str) -> bytes:
    if len(text) > (limit + 2) // 3 * 4 + 4:
        raise TooLarge(f"at most {limit} bytes per attachment", field=f"{field}.content")
    try:
        content = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("not valid base64", field=f"{field}.content") from None
    if len(content) > limit:
        raise TooLarge(f"at most {limit} bytes per attachment", field=f"{field}.content")
    return content


async def _fetched(account_id: AccountId, row: dict[str, Any], limit: int, field: str) -> bytes:
    fetcher = content_fetcher()
    if fetcher is None:
        raise ActionFailed(
            "attachments cannot be fetched from providers", provider_code="NO_FETCHER"
        )
    try:
        data = await fetcher.fetch_attachment(
            account_id, row["provider_message_id"], attachment_record(row)
        )
        if isinstance(data, bytes):
            content = data
        else:
            chunks = bytearray()
            async for chunk in data:
                chunks += chunk
                if len(chunks) > limit:
                    break
            content = bytes(chunks)
    except Exception as error:
        code = str(getattr(error, "code", type(error).__name__))
        raise ActionFailed(
            f"the provider did not deliver the attachment ({code})", provider_code=code
        ) from None
    if len(content) > limit:
        raise TooLarge(f"at most {limit} bytes per attachment", field=f"{field}.attachmentId")
    return content
