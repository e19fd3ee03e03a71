"""Microsoft Graph drafts: a draft is a message in Drafts (``isDraft``), created from MIME.

``POST /me/messages`` with the base64 MIME as ``text/plain`` creates the draft and answers it
whole (201), so In-Reply-To/References and attachments stay exactly as built. Graph cannot
PATCH a message's MIME, so replacing a draft's content creates the new draft first and then
deletes the old one (the draft gets a new id; if that delete fails, the new draft is answered
all the same, as for IMAP, and the next sync shows what is left of the old one). Graph's
message resource carries no In-Reply-To, so the cache cannot tell that a draft is a reply: a
replacement that names none takes In-Reply-To/References from the old draft's MIME, and a
reply draft stays one.
``POST /messages/{id}/send`` answers 202 without the sent copy: the draft leaves the cache and
the copy comes with the next sync of Sent Items.
"""

from __future__ import annotations

import base64
import logging
from email.parser import BytesHeaderParser

from sync.providers.errors import PermanentError, ProviderError
from sync.providers.graph_client import API_ROOT, GraphClient
from sync.providers.graph_delta import message_path
from sync.providers.graph_records import message_record
from sync.providers.records import ChangeBatch

logger = logging.getLogger(__name__)

_REPLY_HEADERS = ("In-Reply-To", "References")


class GraphDrafts:
    """The ``DraftActions`` of a Graph adapter (which provides ``_client``)."""

    _client: GraphClient

    async def create_draft(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        """Graph threads a draft by its In-Reply-To/References: ``thread_provider_id`` is
        not sent."""
        answer = await self._client.send_text(
            "POST", f"{API_ROOT}/messages", "messages.create", base64.b64encode(raw).decode()
        )
        if answer is None or "id" not in answer:
            raise PermanentError("messages.create: the answer names no message", code="NO_DRAFT")
        return ChangeBatch(upserts=[message_record(answer)])

    async def update_draft(
        self, provider_id: str, raw: bytes, thread_provider_id: str | None
    ) -> ChangeBatch:
        if _REPLY_HEADERS[0] not in BytesHeaderParser().parsebytes(raw):
            old = await self._client.get_bytes(
                f"{message_path(provider_id)}/$value", "messages.mime"
            )
            raw = _kept_reply_headers(old) + raw
        created = await self.create_draft(raw, thread_provider_id)
        try:
            await self._client.send("DELETE", message_path(provider_id), "messages.delete")
        except ProviderError as error:
            # The new draft is stored: answer it (an error would have the client save it
            # again); the next sync shows whatever is left of the old one.
            logger.warning("draft replaced; its old version was not deleted (%s)", error.code)
            return created
        return ChangeBatch(upserts=created.upserts, deletions=[provider_id])

    async def delete_draft(self, provider_id: str) -> ChangeBatch:
        await self._client.send("DELETE", message_path(provider_id), "messages.delete")
        return ChangeBatch(deletions=[provider_id])

    async def send_draft(self, provider_id: str) -> ChangeBatch:
        await self._client.send("POST", f"{message_path(provider_id)}/send", "messages.send")
        return ChangeBatch(deletions=[provider_id])


def _kept_reply_headers(old_mime: bytes) -> bytes:
    """The old draft's In-Reply-To/References as header lines (unfolded), if it has them."""
    headers = BytesHeaderParser().parsebytes(old_mime)
    lines = b""
    for name in _REPLY_HEADERS:
        value = " ".join(str(headers.get(name, "")).split())
        if value:
            lines += f"{name}: {value}\r\n".encode("ascii", "replace")
    return lines
