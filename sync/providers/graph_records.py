"""Microsoft Graph JSON -> the plain records of `sync.providers.records`.

Pure functions, no I/O: which properties the adapter asks for (`$select`), and how a message,
folder or attachment of Graph's v1.0 JSON becomes a record. It must never guess data Graph did
not send (a missing property becomes the record's default) and never keep attachment bytes.

Mapping: provider_id = immutable id (the adapter always asks for ImmutableId), thread =
conversationId, Message-ID = internetMessageId, date = receivedDateTime, unread = not isRead,
starred = flag.flagStatus "flagged", draft = isDraft, label_ids = (parentFolderId,) followed by
"category:<name>" for each Outlook category.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.types import FolderRole
from sync.providers.records import (
    Address,
    AttachmentRecord,
    FolderRecord,
    MessageContent,
    MessageRecord,
)

CATEGORY_PREFIX = "category:"
ROOT_FOLDER = "msgfolderroot"
WELL_KNOWN_ROLES: Mapping[str, FolderRole] = {
    "inbox": FolderRole.INBOX,
    "sentitems": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "deleteditems": FolderRole.TRASH,
    "junkemail": FolderRole.SPAM,
    "archive": FolderRole.ARCHIVE,
}
"""Graph v1.0 has no wellKnownName property: each is resolved by GET /mailFolders/{name}."""

MESSAGE_FIELDS = (
    "conversationId",
    "internetMessageId",
    "subject",
    "receivedDateTime",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "isRead",
    "isDraft",
    "flag",
    "parentFolderId",
    "categories",
    "hasAttachments",
    "bodyPreview",
)
FOLDER_FIELDS = ("displayName", "parentFolderId", "totalItemCount", "unreadItemCount")
ATTACHMENT_FIELDS = ("id", "name", "contentType", "size", "isInline")
"""Never contentBytes: bytes are fetched one attachment at a time, on demand."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def message_select(*, with_content: bool) -> str:
    return ",".join((*MESSAGE_FIELDS, "body") if with_content else MESSAGE_FIELDS)


def message_record(
    item: Mapping[str, Any],
    *,
    content: MessageContent | None = None,
    attachments: Iterable[AttachmentRecord] | None = None,
) -> MessageRecord:
    """A delta or GET item as a record (``content`` and ``attachments`` fetched by the caller).

    Delta never lists attachments: without ``attachments`` the record says it does not know
    them, so apply keeps what an earlier fetch stored.
    """
    folder_id = _text(item.get("parentFolderId"))
    categories = [c for c in item.get("categories") or () if isinstance(c, str)]
    flag = item.get("flag")
    sender = item.get("from") or item.get("sender")
    return MessageRecord(
        provider_id=str(item["id"]),
        thread_provider_id=_text(item.get("conversationId")) or None,
        subject=_text(item.get("subject")),
        date=_datetime(item.get("receivedDateTime")),
        from_addresses=_addresses([sender] if sender else []),
        to_addresses=_addresses(item.get("toRecipients")),
        cc_addresses=_addresses(item.get("ccRecipients")),
        bcc_addresses=_addresses(item.get("bccRecipients")),
        reply_to_addresses=_addresses(item.get("replyTo")),
        message_id_header=_text(item.get("internetMessageId")) or None,
        snippet=_text(item.get("bodyPreview")),
        unread=item.get("isRead") is False,
        starred=isinstance(flag, dict) and flag.get("flagStatus") == "flagged",
        draft=item.get("isDraft") is True,
        label_ids=(
            *((folder_id,) if folder_id else ()),
            *(f"{CATEGORY_PREFIX}{name}" for name in categories),
        ),
        attachments=tuple(attachments or ()),
        attachments_known=attachments is not None,
        content=content,
    )


def message_content(item: Mapping[str, Any]) -> MessageContent | None:
    """The ``body`` of an item as content (Graph serves one body: text or html)."""
    body = item.get("body")
    if not isinstance(body, dict):
        return None
    text = _text(body.get("content"))
    if str(body.get("contentType", "")).lower() == "html":
        return MessageContent(text_body=None, html_body=text)
    return MessageContent(text_body=text, html_body=None)


def references_inline_parts(item: Mapping[str, Any]) -> bool:
    """Whether an HTML body points at cid: parts, which hasAttachments does not count."""
    body = item.get("body")
    return isinstance(body, dict) and "cid:" in _text(body.get("content")).lower()


def folder_record(
    item: Mapping[str, Any], *, role: FolderRole, root_id: str | None
) -> FolderRecord:
    """A mailFolder; a top-level folder (child of msgfolderroot) has no parent."""
    parent = _text(item.get("parentFolderId"))
    return FolderRecord(
        provider_id=str(item["id"]),
        name=_text(item.get("displayName")),
        role=role,
        parent_provider_id=parent if parent and parent != root_id else None,
        total_count=_count(item.get("totalItemCount")),
        unread_count=_count(item.get("unreadItemCount")),
    )


def attachment_record(item: Mapping[str, Any]) -> AttachmentRecord:
    return AttachmentRecord(
        filename=_text(item.get("name")),
        content_type=_text(item.get("contentType")) or "application/octet-stream",
        size=_count(item.get("size")),
        provider_attachment_id=_text(item.get("id")) or None,
        content_id=_text(item.get("contentId")) or None,
        inline=item.get("isInline") is True,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _datetime(value: object) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _EPOCH
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return _EPOCH


def _addresses(recipients: object) -> tuple[Address, ...]:
    found: list[Address] = []
    for recipient in recipients if isinstance(recipients, list) else ():
        entry = recipient.get("emailAddress") if isinstance(recipient, dict) else None
        if not isinstance(entry, dict):
            continue
        email, name = _text(entry.get("address")), _text(entry.get("name"))
        # Graph repeats the address as the name when the header had none.
        found.append(Address(name="" if name == email else name, email=email))
    return tuple(found)
