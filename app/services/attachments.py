"""Attachment downloads: find the attachment with the caller's tenancy, fetch its bytes.

An attachment of another owner, or of an account the token may not touch, is ``NotFound``
exactly like one that does not exist. Bytes come from the registered ``ContentFetcher`` (the
provider); the cache keeps attachment metadata only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.auth.principal import Principal
from app.models import Attachment
from app.services.errors import NotFound, ServiceError
from app.services.message_content import CHUNK_SIZE, AttachmentBytes, content_fetcher
from app.types import AccountId
from sync.providers.records import AttachmentRecord

logger = logging.getLogger(__name__)


class ContentUnavailable(ServiceError):
    """The bytes cannot be had now: no fetcher registered, or the provider failed."""

    code = "CONTENT_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class AttachmentDownload:
    filename: str
    content_type: str
    size: int
    chunks: AsyncIterator[bytes]


RECORD_FIELDS = (
    "filename",
    "content_type",
    "size",
    "provider_attachment_id",
    "part_id",
    "content_id",
    "inline",
)
"""The columns of a cached attachment that a provider needs to find its bytes."""


def attachment_record(row: Mapping[str, Any]) -> AttachmentRecord:
    """The ``AttachmentRecord`` of a row read with ``.values(*RECORD_FIELDS, ...)``."""
    return AttachmentRecord(**{name: row[name] for name in RECORD_FIELDS})


async def _chunked(data: AttachmentBytes) -> AsyncIterator[bytes]:
    if isinstance(data, bytes):
        for start in range(0, len(data), CHUNK_SIZE):
            yield data[start : start + CHUNK_SIZE]
        return
    async for chunk in data:
        yield chunk


async def open_attachment(principal: Principal, attachment_id: int) -> AttachmentDownload:
    """The attachment's metadata and a stream of its bytes."""
    rows = (
        await Attachment.filter(id=attachment_id, message__account__owner_id=principal.owner_id)
        .limit(1)
        .values(
            *RECORD_FIELDS,
            account_id="message__account_id",
            provider_message_id="message__provider_id",
        )
    )
    row = rows[0] if rows else None
    if row is None or not principal.may_touch(row["account_id"]):
        raise NotFound("attachment not found")
    fetcher = content_fetcher()
    if fetcher is None:
        raise ContentUnavailable("Attachment bytes cannot be fetched from the provider yet.")
    try:
        data = await fetcher.fetch_attachment(
            AccountId(row["account_id"]), row["provider_message_id"], attachment_record(row)
        )
    except Exception as error:
        code = str(getattr(error, "code", type(error).__name__))
        logger.warning("attachment fetch failed for attachment %s: %s", attachment_id, code)
        raise ContentUnavailable("The provider did not deliver the attachment.") from None
    return AttachmentDownload(row["filename"], row["content_type"], row["size"], _chunked(data))
