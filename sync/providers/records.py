"""Plain records every provider adapter produces and ``sync.apply`` consumes.

Adapters turn Gmail JSON, Graph JSON and IMAP responses into these frozen dataclasses; nothing
here knows about the ORM, HTTP or GraphQL. A record always carries the latest full state of what
it describes (PROVIDERS.md M4: always upsert), so applying one twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.types import FolderRole


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox address with its display name (decoded, may be empty)."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """Metadata of one attachment; bytes are fetched on demand."""

    filename: str
    content_type: str
    size: int
    provider_attachment_id: str | None = None
    part_id: str | None = None
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True, slots=True)
class MessageContent:
    """The content of a message, when the adapter fetched it."""

    text_body: str | None
    html_body: str | None
    headers: tuple[tuple[str, str], ...] = ()
    raw_mime: bytes | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """The full current state of one message as the provider has it."""

    provider_id: str
    thread_provider_id: str | None
    subject: str
    date: datetime
    from_addresses: tuple[Address, ...] = ()
    to_addresses: tuple[Address, ...] = ()
    cc_addresses: tuple[Address, ...] = ()
    bcc_addresses: tuple[Address, ...] = ()
    reply_to_addresses: tuple[Address, ...] = ()
    message_id_header: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    snippet: str = ""
    size: int = 0
    unread: bool = False
    starred: bool = False
    draft: bool = False
    label_ids: tuple[str, ...] = ()
    attachments: tuple[AttachmentRecord, ...] = ()
    content: MessageContent | None = None
    parse_error: str | None = None
    # False when the adapter could not see the MIME structure (Gmail format=metadata, which a
    # gmail.metadata-scoped token is limited to): ``attachments`` is then empty because it is
    # unknown, and must not replace attachment metadata stored from an earlier fetch.
    attachments_known: bool = True


@dataclass(frozen=True, slots=True)
class FlagsRecord:
    """A change of labels/flags only (Gmail labelsAdded/Removed, IMAP FLAGS): never creates."""

    provider_id: str
    label_ids: tuple[str, ...]
    unread: bool
    starred: bool


@dataclass(frozen=True, slots=True)
class FolderRecord:
    """A folder (Graph, IMAP) or a label (Gmail)."""

    provider_id: str
    name: str
    role: FolderRole = FolderRole.CUSTOM
    parent_provider_id: str | None = None
    total_count: int = 0
    unread_count: int = 0


@dataclass(frozen=True, slots=True)
class FolderResync:
    """Every message one folder holds now, after its change tracking restarted or it vanished.

    Graph answers 410 for a dead per-folder delta link; the adapter restarts that folder alone
    and cannot know which cached messages the fresh listing no longer has. Apply it after the
    batch's upserts and deletions: a cached message still filed under ``folder_provider_id``
    whose id is not in ``provider_ids`` is gone. A message that moved out of the folder arrives
    as an upsert in the same batch, is filed elsewhere by then, and survives.
    """

    folder_provider_id: str
    provider_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """One unit of sync work: applied in one transaction together with ``cursor``.

    ``cursor`` is what the engine stores once the batch is applied (None: keep the old one).
    During a full sync, ``next_page_token`` says where the next page starts (stored with the
    batch, so a killed worker resumes there) and ``cursor`` is set on the last page only.
    ``complete`` says whether the provider has nothing more right now. ``folder_resyncs``
    (Graph only so far) are applied last, after upserts and deletions.
    """

    upserts: Sequence[MessageRecord] = ()
    flag_updates: Sequence[FlagsRecord] = ()
    deletions: Sequence[str] = ()
    folders: Sequence[FolderRecord] | None = None
    cursor: str | None = None
    next_page_token: str | None = None
    complete: bool = True
    folder_resyncs: Sequence[FolderResync] = ()
