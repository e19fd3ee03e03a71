"""Gmail JSON -> plain records: labels to folders, messages (raw or metadata) to MessageRecords.

Pure functions over the JSON Gmail returns; no I/O. The MIME itself is read by
``sync.providers.mime``, so a message fetched ``format=raw`` and one fetched ``format=metadata``
give the same envelope. A metadata record cannot see the MIME structure: it says so with
``attachments_known=False`` rather than claiming the message has no attachments.

Flags come from system labels (UNREAD, STARRED, DRAFT); ``label_ids`` keeps all of them, so
nothing Gmail said is lost. Never logs; never keeps bodies beyond the record it returns.
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.types import FolderRole
from sync.providers.mime import ParsedMessage, parse_envelope, parse_message
from sync.providers.records import FlagsRecord, FolderRecord, MessageContent, MessageRecord

JSON = Mapping[str, Any]

# The headers a metadata fetch asks for: exactly what the envelope needs.
METADATA_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
)

SYSTEM_ROLES: Mapping[str, FolderRole] = {
    "INBOX": FolderRole.INBOX,
    "SENT": FolderRole.SENT,
    "DRAFT": FolderRole.DRAFTS,
    "TRASH": FolderRole.TRASH,
    "SPAM": FolderRole.SPAM,
    "STARRED": FolderRole.STARRED,
    "IMPORTANT": FolderRole.IMPORTANT,
}
# UNREAD is a flag (MessageRecord.unread), not a place: it is not listed as a folder.
NOT_FOLDERS = frozenset({"UNREAD"})


def folder_records(labels: Iterable[JSON]) -> list[FolderRecord]:
    """``labels.list`` entries as folders. Nested user labels ("Work/Clients") get the label
    named by the part before the last slash as their parent, when it exists."""
    named = [(str(label["id"]), str(label.get("name", label["id"])), label) for label in labels]
    by_name = {name: label_id for label_id, name, _ in named}
    folders = []
    for label_id, name, label in named:
        if label_id in NOT_FOLDERS:
            continue
        parent_name, slash, _ = name.rpartition("/")
        parent = by_name.get(parent_name) if slash and label.get("type") == "user" else None
        folders.append(
            FolderRecord(
                provider_id=label_id,
                name=name,
                role=label_role(label_id, str(label.get("type", "user"))),
                parent_provider_id=parent,
                total_count=int(label.get("messagesTotal", 0)),
                unread_count=int(label.get("messagesUnread", 0)),
            )
        )
    return folders


def label_role(label_id: str, label_type: str) -> FolderRole:
    if label_id in SYSTEM_ROLES:
        return SYSTEM_ROLES[label_id]
    if label_id.startswith("CATEGORY_"):
        return FolderRole.CATEGORY
    return FolderRole.CUSTOM


def flags_record(message: JSON) -> FlagsRecord:
    """A history entry's ``message`` (id, threadId, labelIds after the change) as flags."""
    labels = _label_ids(message)
    return FlagsRecord(
        provider_id=str(message["id"]),
        label_ids=labels,
        unread="UNREAD" in labels,
        starred="STARRED" in labels,
    )


def message_record(message: JSON, *, with_content: bool) -> MessageRecord:
    """A ``messages.get`` answer (``format=raw`` or ``format=metadata``) as a record; bodies
    only ``with_content`` (and only from raw)."""
    received = _internal_date(message)
    if "raw" in message:
        raw, problem = _raw_bytes(message)
        parsed = parse_message(raw, fallback_date=received)
        envelope, parse_error = parsed.envelope, problem or parsed.parse_error
        attachments, attachments_known = parsed.attachments, problem is None
        content = _content(parsed) if with_content else None
    else:
        headers = message.get("payload", {}).get("headers", [])
        envelope, parse_error = parse_envelope(
            ((str(h.get("name", "")), str(h.get("value", ""))) for h in headers),
            fallback_date=received,
        )
        attachments, attachments_known, content = (), False, None
    labels = _label_ids(message)
    return MessageRecord(
        provider_id=str(message["id"]),
        thread_provider_id=message.get("threadId"),
        subject=envelope.subject,
        date=envelope.date or received,
        from_addresses=envelope.from_addresses,
        to_addresses=envelope.to_addresses,
        cc_addresses=envelope.cc_addresses,
        bcc_addresses=envelope.bcc_addresses,
        reply_to_addresses=envelope.reply_to_addresses,
        message_id_header=envelope.message_id,
        in_reply_to=envelope.in_reply_to,
        references=envelope.references,
        # Gmail's snippet is HTML-escaped ("&#39;"); records carry plain text.
        snippet=html.unescape(str(message.get("snippet", ""))),
        size=int(message.get("sizeEstimate", 0)),
        unread="UNREAD" in labels,
        starred="STARRED" in labels,
        draft="DRAFT" in labels,
        label_ids=labels,
        attachments=attachments,
        attachments_known=attachments_known,
        content=content,
        parse_error=parse_error,
    )


def message_content(message: JSON) -> MessageContent:
    """A ``format=raw`` answer as content, raw MIME included (on-demand fetches)."""
    raw, _ = _raw_bytes(message)
    return _content(parse_message(raw, fallback_date=_internal_date(message)), raw)


def raw_bytes(message: JSON) -> bytes:
    """The RFC 822 bytes of a ``format=raw`` answer (empty if Gmail sent something else)."""
    return _raw_bytes(message)[0]


def _content(parsed: ParsedMessage, raw: bytes | None = None) -> MessageContent:
    return MessageContent(parsed.text_body, parsed.html_body, parsed.headers, raw)


def _raw_bytes(message: JSON) -> tuple[bytes, str | None]:
    value = message.get("raw")
    if not isinstance(value, str):
        return b"", "raw missing"
    try:
        # Gmail pads its base64url; tolerate a server that does not.
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), None
    except (binascii.Error, ValueError):
        return b"", "raw undecodable"


def _label_ids(message: JSON) -> tuple[str, ...]:
    # Gmail leaves out empty lists: no labelIds key means no labels.
    return tuple(str(label) for label in message.get("labelIds", ()))


def _internal_date(message: JSON) -> datetime:
    try:
        return datetime.fromtimestamp(int(message["internalDate"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, UTC)
