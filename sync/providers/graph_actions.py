"""Microsoft Graph writes: PATCH for read and flag, ``move`` for moves, archive and trash, DELETE.

Graph answers a PATCH or a move with the whole message, which becomes a full record (requests
carry ``Prefer: IdType="ImmutableId"``, so a moved message keeps its id; if Graph ever answers
with another id, the old one is deleted from the cache). Archive and trash are moves to the
well-known folders ``archive`` and ``deleteditems``, resolved to their ids first so the cache
files the message under the folder it knows. Graph has folders, not labels: label changes are
``UnsupportedAction``.
"""

from __future__ import annotations

import base64
from typing import Any

from sync.providers.actions import ActionKind, MessageAction, UnsupportedAction
from sync.providers.graph_client import API_ROOT, GraphClient
from sync.providers.graph_delta import folder_path, message_path
from sync.providers.graph_drafts import GraphDrafts
from sync.providers.graph_records import message_record
from sync.providers.records import ChangeBatch

_WELL_KNOWN = {ActionKind.ARCHIVE: "archive", ActionKind.TRASH: "deleteditems"}


class GraphActions(GraphDrafts):
    """The ``MessageActions`` (and, inherited, ``DraftActions``) of a Graph adapter (which
    provides ``_client``)."""

    _client: GraphClient

    async def act(self, provider_id: str, action: MessageAction) -> ChangeBatch:
        path = message_path(provider_id)
        answer: dict[str, Any] | None
        match action.kind:
            case ActionKind.DELETE:
                await self._client.send("DELETE", path, "messages.delete")
                return ChangeBatch(deletions=[provider_id])
            case ActionKind.MARK_READ:
                answer = await self._client.send(
                    "PATCH", path, "messages.update", {"isRead": action.flag}
                )
            case ActionKind.STAR:
                status = "flagged" if action.flag else "notFlagged"
                answer = await self._client.send(
                    "PATCH", path, "messages.update", {"flag": {"flagStatus": status}}
                )
            case ActionKind.MOVE | ActionKind.ARCHIVE | ActionKind.TRASH:
                folder = action.folder or await self._folder_id(_WELL_KNOWN[action.kind])
                answer = await self._client.send(
                    "POST", f"{path}/move", "messages.move", {"destinationId": folder}
                )
            case _:
                raise UnsupportedAction("Microsoft mailboxes have folders, not labels")
        if answer is None or "id" not in answer:
            answer = await self._client.get_json(path, "messages.get")
        record = message_record(answer)
        gone = [provider_id] if record.provider_id != provider_id else []
        return ChangeBatch(upserts=[record], deletions=gone)

    async def send_mime(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        """``sendMail`` with the MIME as base64 text: Graph answers 202 without the message,
        which reaches the cache with the next sync of Sent Items (the caller makes the account
        due). Graph threads a reply by its In-Reply-To/References, so ``thread_provider_id``
        is not sent."""
        await self._client.send_text(
            "POST", f"{API_ROOT}/sendMail", "sendMail", base64.b64encode(raw).decode("ascii")
        )
        return ChangeBatch()

    async def _folder_id(self, well_known: str) -> str:
        folder = await self._client.get_json(
            f"{folder_path(well_known)}?$select=id", "mailFolders.get"
        )
        return str(folder["id"])
