"""Gmail drafts: ``drafts.create/update/delete/send``, the answers turned into cache records.

Gmail names a draft by a draft id, the cache by its message id, so each call on an existing
draft first finds the draft id by paging ``drafts.list`` (ids only, 500 a page). Gmail gives new
content a new message id (``drafts.update``) and the sent copy its own (``drafts.send``): the old
id then comes back as a deletion. Draft and sent messages are read with ``messages.get``
(metadata) into full records, labels included (``DRAFT``, ``SENT``).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from sync.providers.gmail_client import GmailClient, NotFound
from sync.providers.gmail_records import METADATA_HEADERS, message_record
from sync.providers.records import ChangeBatch, MessageRecord

_LIST_PAGE = 500


class GmailDrafts:
    """The ``DraftActions`` of a Gmail adapter (which provides ``_client``)."""

    _client: GmailClient

    async def create_draft(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        body = {"message": _message(raw, thread_provider_id)}
        answer = await self._client.send("POST", "/drafts", "drafts.create", body)
        return await self._answered(answer, None)

    async def update_draft(
        self, provider_id: str, raw: bytes, thread_provider_id: str | None
    ) -> ChangeBatch:
        draft_id = await self._draft_id(provider_id)
        body = {"id": draft_id, "message": _message(raw, thread_provider_id)}
        path = f"/drafts/{quote(draft_id, safe='')}"
        answer = await self._client.send("PUT", path, "drafts.update", body)
        return await self._answered(answer, provider_id)

    async def delete_draft(self, provider_id: str) -> ChangeBatch:
        draft_id = await self._draft_id(provider_id)
        await self._client.send("DELETE", f"/drafts/{quote(draft_id, safe='')}", "drafts.delete")
        return ChangeBatch(deletions=[provider_id])

    async def send_draft(self, provider_id: str) -> ChangeBatch:
        draft_id = await self._draft_id(provider_id)
        sent = await self._client.send("POST", "/drafts/send", "drafts.send", {"id": draft_id})
        if not sent or "id" not in sent:
            return ChangeBatch(deletions=[provider_id])
        record = await self.fetched_record(str(sent["id"]))
        gone = [provider_id] if record.provider_id != provider_id else []
        return ChangeBatch(upserts=[record], deletions=gone)

    async def fetched_record(self, message_id: str) -> MessageRecord:
        """A message as ``messages.get`` (metadata) has it."""
        answer = await self._client.get_message(
            message_id, {"format": "metadata", "metadataHeaders": METADATA_HEADERS}
        )
        return message_record(answer, with_content=False)

    async def _answered(self, draft: dict[str, Any] | None, old_id: str | None) -> ChangeBatch:
        message = (draft or {}).get("message") or {}
        if "id" not in message:
            raise NotFound("drafts: the answer names no message")
        record = await self.fetched_record(str(message["id"]))
        gone = [old_id] if old_id is not None and old_id != record.provider_id else []
        return ChangeBatch(upserts=[record], deletions=gone)

    async def _draft_id(self, provider_id: str) -> str:
        """The id of the draft whose message is ``provider_id``; ``NotFound`` if none is."""
        params: dict[str, Any] = {"maxResults": _LIST_PAGE}
        while True:
            page = await self._client.get("/drafts", "drafts.list", params)
            for draft in page.get("drafts") or ():
                if (draft.get("message") or {}).get("id") == provider_id:
                    return str(draft["id"])
            token = page.get("nextPageToken")
            if not token:
                raise NotFound("drafts: no draft holds this message")
            params = {**params, "pageToken": token}


def _message(raw: bytes, thread_provider_id: str | None) -> dict[str, str]:
    message = {"raw": base64.urlsafe_b64encode(raw).decode("ascii")}
    if thread_provider_id:
        message["threadId"] = thread_provider_id
    return message
