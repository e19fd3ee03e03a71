"""Drafts at a provider, as every adapter sees them: four calls, each answering a ``ChangeBatch``.

An adapter that keeps drafts (``DraftActions``) creates, replaces, deletes and sends them, and
answers with what the provider says, for the caller to apply to the cache (``sync.apply``):

    create_draft  -> upserts = [the draft's message]
    update_draft  -> upserts = [the draft's message now]; deletions = [the old id] if it changed
    delete_draft  -> deletions = [the draft's message]
    send_draft    -> deletions = [the draft's message] (when the sent copy has another id);
                     upserts = [the sent copy] when the provider's answer names it

Drafts are named by their message's provider id (what the cache holds). Raw MIME comes built
and checked (``app.services.compose``). Nothing is retried here; nothing touches the database.
"""

from __future__ import annotations

from typing import Protocol

from sync.providers.records import ChangeBatch


class DraftActions(Protocol):
    """An adapter that can keep drafts in its mailbox."""

    async def create_draft(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch: ...

    async def update_draft(
        self, provider_id: str, raw: bytes, thread_provider_id: str | None
    ) -> ChangeBatch: ...

    async def delete_draft(self, provider_id: str) -> ChangeBatch: ...

    async def send_draft(self, provider_id: str) -> ChangeBatch: ...
