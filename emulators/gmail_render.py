"""Gmail API resources as JSON: messages in the four formats, threads, history, labels, drafts.

Follows Gmail's wire habits that clients trip over: ids and counters that are 64-bit are strings
(``historyId``, ``internalDate``), empty lists are left out (a message without labels has no
``labelIds`` key at all), bodies are base64url *with* padding, and attachment ids differ on every
fetch of the same message, so a client must not use them as stable keys.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Collection
from enum import StrEnum
from typing import Any

from emulators.gmail_history import HistoryRecord, HistoryType, MessageRef
from emulators.gmail_labels import Label
from emulators.gmail_mime import MimePart
from emulators.gmail_records import Draft, LabelCounts, Profile, StoredMessage

JSON = dict[str, Any]


class MessageFormat(StrEnum):
    MINIMAL = "minimal"
    METADATA = "metadata"
    FULL = "full"
    RAW = "raw"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def b64url_decode(data: str) -> bytes:
    """Decode base64url with or without padding (Gmail accepts both); ValueError if invalid."""
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class AttachmentIds:
    """Issues opaque attachment ids that name (message, part) and differ on every issue."""

    def __init__(self) -> None:
        self._serial = itertools.count(1)

    def issue(self, message_id: str, part_id: str) -> str:
        token = f"{message_id}:{part_id}:{next(self._serial)}".encode()
        return "ANGjdJ" + base64.urlsafe_b64encode(token).decode().rstrip("=")

    @staticmethod
    def parse(attachment_id: str) -> tuple[str, str] | None:
        """(message id, part id) named by ``attachment_id``, or None if it is not one of ours."""
        body = attachment_id.removeprefix("ANGjdJ")
        try:
            decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        except ValueError:
            return None
        message_id, _, rest = decoded.partition(":")
        part_id, _, serial = rest.rpartition(":")
        return (message_id, part_id) if serial.isdigit() else None


def message_json(
    message: StoredMessage,
    fmt: MessageFormat,
    attachment_ids: AttachmentIds,
    metadata_headers: Collection[str] = (),
) -> JSON:
    body = _ref_json(message.ref())
    body |= {
        "snippet": message.parsed.snippet,
        "sizeEstimate": message.size_estimate,
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date),
    }
    payload = message.parsed.payload
    if fmt is MessageFormat.METADATA:
        wanted = {name.lower() for name in metadata_headers}
        headers = [h for h in payload.headers if not wanted or h[0].lower() in wanted]
        body["payload"] = {
            "partId": "",
            "mimeType": payload.mime_type,
            "filename": "",
            "headers": _headers_json(headers),
        }
    elif fmt is MessageFormat.FULL:
        body["payload"] = _part_json(payload, message.id, attachment_ids)
    elif fmt is MessageFormat.RAW:
        body["raw"] = b64url(message.raw)
    return body


def short_message_json(message: StoredMessage) -> JSON:
    """The message as modify, trash, send and friends return it."""
    return {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.label_ids)}


def profile_json(profile: Profile) -> JSON:
    return {
        "emailAddress": profile.email_address,
        "messagesTotal": profile.messages_total,
        "threadsTotal": profile.threads_total,
        "historyId": str(profile.history_id),
    }


def thread_json(
    thread_id: str,
    messages: list[StoredMessage],
    fmt: MessageFormat,
    attachment_ids: AttachmentIds,
    metadata_headers: Collection[str] = (),
) -> JSON:
    return {
        "id": thread_id,
        "historyId": str(max(m.history_id for m in messages)),
        "messages": [message_json(m, fmt, attachment_ids, metadata_headers) for m in messages],
    }


def history_json(record: HistoryRecord, types: Collection[HistoryType]) -> JSON:
    body: JSON = {
        "id": str(record.id),
        "messages": [{"id": record.message.id, "threadId": record.message.thread_id}],
    }
    for change in record.changes:
        if types and change.type not in types:
            continue
        entry: JSON = {"message": _ref_json(record.message)}
        if change.label_ids:
            entry["labelIds"] = list(change.label_ids)
        body.setdefault(change.type.field, []).append(entry)
    return body


def label_json(label: Label, counts: LabelCounts | None = None) -> JSON:
    body: JSON = {"id": label.id, "name": label.name, "type": label.type}
    if not label.is_system:
        body |= {"messageListVisibility": "show", "labelListVisibility": "labelShow"}
    if counts is not None:
        body |= {
            "messagesTotal": counts.messages_total,
            "messagesUnread": counts.messages_unread,
            "threadsTotal": counts.threads_total,
            "threadsUnread": counts.threads_unread,
        }
    return body


def draft_json(
    draft: Draft, fmt: MessageFormat | None = None, attachment_ids: AttachmentIds | None = None
) -> JSON:
    """A draft as ``drafts.list`` shows it, or with ``fmt`` as ``drafts.get`` does."""
    if fmt is None or attachment_ids is None:
        message = {"id": draft.message.id, "threadId": draft.message.thread_id}
    else:
        message = message_json(draft.message, fmt, attachment_ids)
    return {"id": draft.id, "message": message}


def _ref_json(ref: MessageRef) -> JSON:
    body: JSON = {"id": ref.id, "threadId": ref.thread_id}
    if ref.label_ids:
        body["labelIds"] = list(ref.label_ids)
    return body


def _headers_json(headers: Collection[tuple[str, str]]) -> list[JSON]:
    return [{"name": name, "value": value} for name, value in headers]


def _part_json(part: MimePart, message_id: str, attachment_ids: AttachmentIds) -> JSON:
    body: JSON = {"size": len(part.body)}
    if part.filename:
        body["attachmentId"] = attachment_ids.issue(message_id, part.part_id)
    elif part.body:
        body["data"] = b64url(part.body)
    node: JSON = {
        "partId": part.part_id,
        "mimeType": part.mime_type,
        "filename": part.filename,
        "headers": _headers_json(part.headers),
        "body": body,
    }
    if part.parts:
        node["parts"] = [_part_json(child, message_id, attachment_ids) for child in part.parts]
    return node
