"""Message content: cached bodies, fetch-through from the provider, and attachment bytes.

The read side never talks to a provider itself (DESIGN.md). It asks this module, which reads
the cache and, for what the cache lacks, asks the ``ContentFetcher`` registered at start-up.
The sync side implements that protocol over the provider adapters (``fetch_content`` and
``fetch_attachment`` of ``sync.providers.adapter.MailboxAdapter``, given the account's
credentials) and registers it with ``register_content_fetcher``. Until one is registered, an
uncached body is reported unavailable (``NO_FETCHER``) and attachment downloads answer
``ContentUnavailable``: never an exception in a GraphQL field.

A body fetched from the provider is stored when the account's policy caches bodies. Nothing
here checks scopes: callers pass only messages the caller may read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from tortoise.exceptions import IntegrityError

from app.models import Account, MessageBody
from app.types import AccountId, MessageId
from sync.providers.records import AttachmentRecord, MessageContent

logger = logging.getLogger(__name__)

FETCH_CONCURRENCY = 4
CHUNK_SIZE = 64 * 1024

AttachmentBytes = bytes | AsyncIterator[bytes]


class ContentFetcher(Protocol):
    """Fetches what the cache does not hold from the account's provider (the sync side)."""

    async def fetch_content(
        self, account_id: AccountId, provider_message_id: str
    ) -> MessageContent:
        """Bodies, headers and (when the provider gives it) raw MIME of one message."""
        ...

    async def fetch_attachment(
        self, account_id: AccountId, provider_message_id: str, attachment: AttachmentRecord
    ) -> AttachmentBytes:
        """The decoded bytes of one attachment, whole or as an async iterator of chunks.
        Errors before the first byte should be raised here, not from the iterator."""
        ...


_fetcher: ContentFetcher | None = None


def register_content_fetcher(fetcher: ContentFetcher | None) -> ContentFetcher | None:
    """Install the process's fetcher (None removes it); returns the one it replaces."""
    global _fetcher
    previous, _fetcher = _fetcher, fetcher
    return previous


def content_fetcher() -> ContentFetcher | None:
    return _fetcher


class BodySource(StrEnum):
    CACHE = "cache"
    PROVIDER = "provider"
    UNAVAILABLE = "unavailable"


class UnavailableReason(StrEnum):
    NOT_CACHED = "not_cached"  # the account's policy does not fetch uncached bodies
    NO_FETCHER = "no_fetcher"  # this server cannot fetch from providers (yet)
    PROVIDER_ERROR = "provider_error"  # the provider did not answer with the content
    MESSAGE_GONE = "message_gone"  # the message left the cache meanwhile


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Which message: its cache id, account and the provider's id for it."""

    message_id: MessageId
    account_id: AccountId
    provider_id: str


@dataclass(frozen=True, slots=True)
class Content:
    """The content of one message and where it came from. ``raw_mime`` is set only when it
    came with a provider fetch; cached raw MIME is read on its own (``load_raw_mime``)."""

    source: BodySource
    text_body: str | None = None
    html_body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    raw_mime: bytes | None = None
    unavailable_reason: UnavailableReason | None = None
    provider_error_code: str | None = field(default=None)


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(pair[0]), str(pair[1])) for pair in value or () if len(pair) == 2)


async def load_contents(refs: Sequence[MessageRef]) -> list[Content]:
    """The content of each message, in order: from the cache, else fetched through."""
    ids = [ref.message_id for ref in refs]
    rows = await MessageBody.filter(message_id__in=ids).values(
        "message_id", "text_body", "html_body", "headers"
    )
    cached = {
        row["message_id"]: Content(
            BodySource.CACHE, row["text_body"], row["html_body"], _headers(row["headers"])
        )
        for row in rows
    }
    missing = [ref for ref in refs if ref.message_id not in cached]
    if missing:
        cached.update(await _fetch_through(missing))
    return [cached[ref.message_id] for ref in refs]


async def load_raw_mime(message_ids: Sequence[MessageId]) -> dict[int, bytes]:
    """Cached raw MIME of these messages (absent when not cached)."""
    rows = await MessageBody.filter(
        message_id__in=list(message_ids), raw_mime__not_isnull=True
    ).values("message_id", "raw_mime")
    return {row["message_id"]: bytes(row["raw_mime"]) for row in rows}


async def _fetch_through(refs: Sequence[MessageRef]) -> dict[int, Content]:
    policies = {
        row["id"]: row
        for row in await Account.filter(id__in={ref.account_id for ref in refs}).values(
            "id", "cache_bodies", "fetch_uncached_bodies"
        )
    }
    fetcher = _fetcher
    limit = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(ref: MessageRef) -> Content:
        policy = policies.get(ref.account_id)
        if policy is None:
            return Content(
                BodySource.UNAVAILABLE, unavailable_reason=UnavailableReason.MESSAGE_GONE
            )
        if not policy["fetch_uncached_bodies"]:
            return Content(BodySource.UNAVAILABLE, unavailable_reason=UnavailableReason.NOT_CACHED)
        if fetcher is None:
            return Content(BodySource.UNAVAILABLE, unavailable_reason=UnavailableReason.NO_FETCHER)
        async with limit:
            try:
                fetched = await fetcher.fetch_content(ref.account_id, ref.provider_id)
            except Exception as error:
                # A provider outage or a fetcher bug must not fail the whole query: the field
                # says the body is unavailable, the log says why (type and code, no content).
                code = str(getattr(error, "code", type(error).__name__))
                logger.warning("body fetch failed for message %s: %s", ref.message_id, code)
                return Content(
                    BodySource.UNAVAILABLE,
                    unavailable_reason=UnavailableReason.PROVIDER_ERROR,
                    provider_error_code=code,
                )
        if policy["cache_bodies"]:
            await _store(ref.message_id, fetched)
        return Content(
            BodySource.PROVIDER,
            fetched.text_body,
            fetched.html_body,
            tuple(fetched.headers),
            fetched.raw_mime,
        )

    results = await asyncio.gather(*(one(ref) for ref in refs))
    return {ref.message_id: content for ref, content in zip(refs, results, strict=True)}


async def _store(message_id: MessageId, content: MessageContent) -> None:
    """Keep a fetched body; a row written meanwhile (by sync) wins."""
    try:
        await MessageBody.create(
            message_id=message_id,
            text_body=content.text_body,
            html_body=content.html_body,
            headers=[list(pair) for pair in content.headers],
            raw_mime=content.raw_mime,
        )
    except IntegrityError:
        logger.debug("body of message %s was cached meanwhile", message_id)
