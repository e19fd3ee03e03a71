"""The production ``ContentFetcher``: what the cache lacks, read from the account's provider.

``app.services.message_content`` asks the registered fetcher for bodies the account's policy
does not cache (fetch-through) and for attachment bytes (the download route, forwarded
attachments). This one opens the account's adapter (``sync.sessions.AdapterFactory`` in the
server), makes the one call, and closes it; provider errors keep their types, which the
content service turns into an unavailable body or download.
"""

from __future__ import annotations

from app.models import Account
from app.services.message_content import ContentFetcher
from app.types import AccountId
from sync.engine import AdapterFactory
from sync.providers.records import AttachmentRecord, MessageContent


class AdapterFetcher(ContentFetcher):
    """Fetches through the adapters ``open_adapter`` builds, one per call."""

    def __init__(self, open_adapter: AdapterFactory) -> None:
        self._open_adapter = open_adapter

    async def fetch_content(
        self, account_id: AccountId, provider_message_id: str
    ) -> MessageContent:
        adapter = await self._open_adapter(await Account.get(id=account_id))
        try:
            return await adapter.fetch_content(provider_message_id)
        finally:
            await adapter.aclose()

    async def fetch_attachment(
        self, account_id: AccountId, provider_message_id: str, attachment: AttachmentRecord
    ) -> bytes:
        adapter = await self._open_adapter(await Account.get(id=account_id))
        try:
            return await adapter.fetch_attachment(provider_message_id, attachment)
        finally:
            await adapter.aclose()
