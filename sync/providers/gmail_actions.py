"""Gmail writes: flags, labels, moves, trash and deletion through ``messages.modify`` & co.

Gmail has labels, not folders: reading is the absence of ``UNREAD``, starring is ``STARRED``,
archiving removes ``INBOX``, and a move adds the target label and removes ``INBOX`` (and the
``SPAM``/``TRASH`` a message is taken out of). ``messages.modify`` and ``messages.trash`` answer
with the message's labels after the change, which become a ``FlagsRecord``; ``messages.delete``
answers 204 and becomes a deletion.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from sync.providers.actions import ActionKind, MessageAction
from sync.providers.gmail_client import GmailClient
from sync.providers.gmail_drafts import GmailDrafts
from sync.providers.gmail_records import flags_record
from sync.providers.records import ChangeBatch

# Labels that behave like folders: a move takes the message out of them.
_FOLDER_LIKE = ("INBOX", "SPAM", "TRASH")


class GmailActions(GmailDrafts):
    """The ``MessageActions`` (and, inherited, ``DraftActions``) of a Gmail adapter (which
    provides ``_client``)."""

    _client: GmailClient

    async def act(self, provider_id: str, action: MessageAction) -> ChangeBatch:
        path = f"/messages/{quote(provider_id, safe='')}"
        if action.kind is ActionKind.DELETE:
            await self._client.send("DELETE", path, "messages.delete")
            return ChangeBatch(deletions=[provider_id])
        if action.kind is ActionKind.TRASH or (
            action.kind is ActionKind.MOVE and action.folder == "TRASH"
        ):
            answer = await self._client.send("POST", f"{path}/trash", "messages.trash")
        else:
            add, remove = _label_change(action)
            body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
            answer = await self._client.send("POST", f"{path}/modify", "messages.modify", body)
        if answer is None or "id" not in answer:
            answer = await self._client.get_message(provider_id, {"format": "minimal"})
        return ChangeBatch(flag_updates=[flags_record(answer)])

    async def send_mime(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        body: dict[str, str] = {"raw": base64.urlsafe_b64encode(raw).decode("ascii")}
        if thread_provider_id:
            body["threadId"] = thread_provider_id
        answer = await self._client.send("POST", "/messages/send", "messages.send", body)
        if not answer or "id" not in answer:
            return ChangeBatch()
        return ChangeBatch(upserts=[await self.fetched_record(str(answer["id"]))])


def _label_change(action: MessageAction) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(labels to add, labels to remove) of every action but trash and delete."""
    match action.kind:
        case ActionKind.MARK_READ:
            return ((), ("UNREAD",)) if action.flag else (("UNREAD",), ())
        case ActionKind.STAR:
            return (("STARRED",), ()) if action.flag else ((), ("STARRED",))
        case ActionKind.ARCHIVE:
            return (), ("INBOX",)
        case ActionKind.MOVE:
            target = str(action.folder)
            return (target,), tuple(label for label in _FOLDER_LIKE if label != target)
        case _:
            return action.add, action.remove
