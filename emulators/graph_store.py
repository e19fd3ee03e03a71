"""Mailbox state of the Graph emulator: folders, messages and the change history behind delta.

One `GraphStore` holds every emulated mailbox behind one `threading.Lock`: uvicorn serves from
its own thread while tests deliver, move and delete from theirs. Records handed out are frozen
snapshots, so nobody reads a message while another thread changes it.

Change history, per mailbox, is a sequence number bumped by every write:

    message.entered_seq   when it arrived in its current folder (delivered, created, moved in)
    message.changed_seq   its last change of any kind
    Tombstone(seq, ...)   it left a folder: reason "deleted" (gone) or "changed" (moved out)

A delta round over a folder is "everything with a seq in (since, upto]", which `message_changes`
answers; tokens that carry those numbers live in `graph_delta.py`. Ids follow PROVIDERS.md M7: a
message keeps its immutable id for life, while its default (REST) id is replaced on every move,
and the old one then answers 404. The store never speaks HTTP; it raises `GraphError`s so that
Python controls and API calls fail alike. Listeners hear every change (subscriptions use this).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from emulators.graph_errors import GraphError, item_not_found
from emulators.graph_mime import ParsedMessage, parse_mime
from emulators.graph_types import Clock, IdType

ChangeType = Literal["created", "updated", "deleted"]
RemovalReason = Literal["deleted", "changed"]

ROOT = "msgfolderroot"
WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
    "outbox": "Outbox",
}
FOLDERS_DELTA_SCOPE = "*folders*"
"""The key under which the folder tree's own delta generation is kept."""


def _opaque_id(prefix: str) -> str:
    # Real ids are long URL-safe base64 with padding; the '=' catches clients that mangle ids.
    return f"{prefix}{secrets.token_urlsafe(33)}AAA="


@dataclass(frozen=True)
class MailFolder:
    id: str
    display_name: str
    parent_id: str
    well_known_name: str | None
    changed_seq: int
    ordinal: int


@dataclass(frozen=True)
class MailMessage:
    immutable_id: str
    rest_id: str
    ordinal: int
    folder_id: str
    mime: bytes
    content: ParsedMessage
    conversation_id: str
    internet_message_id: str
    received_at: datetime
    created_at: datetime
    modified_at: datetime
    is_read: bool
    is_draft: bool
    flag_status: str
    importance: str
    categories: tuple[str, ...]
    changed_seq: int
    entered_seq: int

    def id_for(self, id_type: IdType) -> str:
        return self.immutable_id if id_type is IdType.IMMUTABLE else self.rest_id


@dataclass(frozen=True)
class Tombstone:
    """A message left a folder: what delta reports as `@removed`."""

    seq: int
    folder_id: str
    rest_id: str
    immutable_id: str
    reason: RemovalReason

    def id_for(self, id_type: IdType) -> str:
        return self.immutable_id if id_type is IdType.IMMUTABLE else self.rest_id


@dataclass(frozen=True)
class FolderTombstone:
    seq: int
    folder_id: str


@dataclass(frozen=True)
class MailChange:
    """One change, as subscriptions see it. A move is a "deleted" then a "created"."""

    user_id: str
    change_type: ChangeType
    folder_id: str
    message: MailMessage


@dataclass(frozen=True)
class FolderCounts:
    total: int
    unread: int
    children: int


@dataclass
class _Mailbox:
    user_id: str
    address: str
    display_name: str
    seq: int = 0
    ordinal: int = 0
    folders: dict[str, MailFolder] = field(default_factory=dict)
    messages: dict[str, MailMessage] = field(default_factory=dict)
    rest_ids: dict[str, str] = field(default_factory=dict)
    tombstones: list[Tombstone] = field(default_factory=list)
    folder_tombstones: list[FolderTombstone] = field(default_factory=list)
    conversations: dict[str, str] = field(default_factory=dict)
    delta_generations: dict[str, int] = field(default_factory=dict)
    by_folder: dict[str, set[str]] = field(default_factory=dict)
    """folder id -> immutable ids of its messages (kept by `_put`/`_remove`)."""
    unread: dict[str, int] = field(default_factory=dict)

    def in_folder(self, folder_id: str) -> list[MailMessage]:
        return [self.messages[i] for i in self.by_folder.get(folder_id, ())]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def next_ordinal(self) -> int:
        self.ordinal += 1
        return self.ordinal


class GraphStore:
    """All emulated mailboxes, keyed by the user's object id."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._mailboxes: dict[str, _Mailbox] = {}
        self._listeners: list[Callable[[MailChange], None]] = []

    def add_listener(self, listener: Callable[[MailChange], None]) -> None:
        """Call ``listener`` after every message change (outside the store's lock)."""
        self._listeners.append(listener)

    def now(self) -> datetime:
        return datetime.fromtimestamp(int(self._clock()), UTC)

    # -- mailboxes and folders ----------------------------------------------------------------

    def create_mailbox(self, user_id: str, address: str, display_name: str) -> None:
        mailbox = _Mailbox(user_id, address, display_name)
        root = MailFolder(_opaque_id("AAMkAG"), "Top of Information Store", "", ROOT, 0, 0)
        mailbox.folders[root.id] = root
        for name, display in WELL_KNOWN_FOLDERS.items():
            folder = MailFolder(
                _opaque_id("AAMkAG"), display, root.id, name, 0, mailbox.next_ordinal()
            )
            mailbox.folders[folder.id] = folder
        with self._lock:
            self._mailboxes[user_id] = mailbox

    def has_mailbox(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._mailboxes

    def user_by_address(self, address: str) -> str | None:
        with self._lock:
            for mailbox in self._mailboxes.values():
                if mailbox.address.lower() == address.lower():
                    return mailbox.user_id
        return None

    def address_of(self, user_id: str) -> tuple[str, str]:
        """(address, display name) of a mailbox."""
        with self._lock:
            mailbox = self._mailbox(user_id)
            return mailbox.address, mailbox.display_name

    def folder(self, user_id: str, ref: str) -> MailFolder:
        """A folder by id or well-known name (case-insensitive, e.g. "Inbox", "sentitems")."""
        with self._lock:
            return self._folder(self._mailbox(user_id), ref)

    def folders(self, user_id: str, parent_ref: str | None = None) -> list[MailFolder]:
        """Children of a folder (of the root by default); all folders when parent_ref is "*"."""
        with self._lock:
            mailbox = self._mailbox(user_id)
            if parent_ref == "*":
                return sorted(
                    (f for f in mailbox.folders.values() if f.well_known_name != ROOT),
                    key=lambda f: f.ordinal,
                )
            parent = self._folder(mailbox, parent_ref or ROOT)
            return sorted(
                (f for f in mailbox.folders.values() if f.parent_id == parent.id),
                key=lambda f: f.display_name.lower(),
            )

    def folder_counts(self, user_id: str, folder_id: str) -> FolderCounts:
        with self._lock:
            mailbox = self._mailbox(user_id)
            children = sum(1 for f in mailbox.folders.values() if f.parent_id == folder_id)
            return FolderCounts(
                len(mailbox.by_folder.get(folder_id, ())),
                mailbox.unread.get(folder_id, 0),
                children,
            )

    def create_folder(
        self, user_id: str, display_name: str, parent_ref: str | None = None
    ) -> MailFolder:
        with self._lock:
            mailbox = self._mailbox(user_id)
            parent = self._folder(mailbox, parent_ref or ROOT)
            self._refuse_duplicate_name(mailbox, parent.id, display_name)
            folder = MailFolder(
                _opaque_id("AAMkAG"),
                display_name,
                parent.id,
                None,
                mailbox.next_seq(),
                mailbox.next_ordinal(),
            )
            mailbox.folders[folder.id] = folder
            self._touch_folder(mailbox, parent.id)
            return folder

    def rename_folder(self, user_id: str, ref: str, display_name: str) -> MailFolder:
        with self._lock:
            mailbox = self._mailbox(user_id)
            folder = self._folder(mailbox, ref)
            self._refuse_duplicate_name(mailbox, folder.parent_id, display_name)
            renamed = replace(folder, display_name=display_name, changed_seq=mailbox.next_seq())
            mailbox.folders[folder.id] = renamed
            return renamed

    def delete_folder(self, user_id: str, ref: str) -> None:
        """Delete a user folder, its child folders and their messages."""
        changes: list[MailChange] = []
        with self._lock:
            mailbox = self._mailbox(user_id)
            folder = self._folder(mailbox, ref)
            if folder.well_known_name:
                raise GraphError(
                    403,
                    "ErrorDeleteDistinguishedFolder",
                    "Distinguished folders cannot be deleted.",
                )
            doomed = {folder.id}
            while grown := {
                f.id
                for f in mailbox.folders.values()
                if f.parent_id in doomed and f.id not in doomed
            }:
                doomed |= grown
            for message in [m for f in doomed for m in mailbox.in_folder(f)]:
                changes.append(self._remove(mailbox, message, "deleted"))
            seq = mailbox.next_seq()
            for folder_id in doomed:
                del mailbox.folders[folder_id]
                mailbox.folder_tombstones.append(FolderTombstone(seq, folder_id))
            self._touch_folder(mailbox, folder.parent_id)
        self._notify(changes)

    # -- messages -----------------------------------------------------------------------------

    def deliver(
        self,
        user_id: str,
        folder_ref: str,
        mime: bytes,
        *,
        received_at: datetime | None = None,
        is_read: bool = False,
        is_draft: bool = False,
        flag_status: str = "notFlagged",
        categories: Iterable[str] = (),
    ) -> MailMessage:
        """Put an RFC 822 message into a folder, as Exchange's transport would."""
        content = parse_mime(mime)
        now = self.now()
        with self._lock:
            mailbox = self._mailbox(user_id)
            folder = self._folder(mailbox, folder_ref)
            internet_message_id = content.internet_message_id or (
                f"<{secrets.token_hex(16)}@emulator.outlook.local>"
            )
            seq = mailbox.next_seq()
            message = MailMessage(
                immutable_id=_opaque_id("AAkALg"),
                rest_id=_opaque_id("AAMkAG"),
                ordinal=mailbox.next_ordinal(),
                folder_id=folder.id,
                mime=mime,
                content=content,
                conversation_id=self._conversation_for(mailbox, content, internet_message_id),
                internet_message_id=internet_message_id,
                received_at=received_at or now,
                created_at=now,
                modified_at=now,
                is_read=is_read,
                is_draft=is_draft,
                flag_status=flag_status,
                importance=content.importance,
                categories=tuple(categories),
                changed_seq=seq,
                entered_seq=seq,
            )
            self._put(mailbox, message)
            self._touch_folder(mailbox, folder.id)
        self._notify([MailChange(user_id, "created", folder.id, message)])
        return message

    def message(self, user_id: str, ref: str) -> MailMessage:
        """A message by its immutable id or its current REST id; 404 for a stale REST id."""
        with self._lock:
            return self._message(self._mailbox(user_id), ref)

    def messages(self, user_id: str, folder_id: str | None = None) -> list[MailMessage]:
        """Messages of one folder (or all), newest first."""
        with self._lock:
            mailbox = self._mailbox(user_id)
            found = (
                list(mailbox.messages.values())
                if folder_id is None
                else mailbox.in_folder(folder_id)
            )
        return sorted(found, key=lambda m: (m.received_at, m.ordinal), reverse=True)

    def update_message(
        self,
        user_id: str,
        ref: str,
        *,
        is_read: bool | None = None,
        flag_status: str | None = None,
        categories: Iterable[str] | None = None,
        importance: str | None = None,
        mime: bytes | None = None,
    ) -> MailMessage:
        """Change a message's properties; ``mime`` replaces a draft's whole content."""
        content = None if mime is None else parse_mime(mime)
        with self._lock:
            mailbox = self._mailbox(user_id)
            message = self._message(mailbox, ref)
            if mime is not None and content is not None:
                message = replace(message, mime=mime, content=content)
            updated = replace(
                message,
                is_read=message.is_read if is_read is None else is_read,
                flag_status=flag_status or message.flag_status,
                categories=message.categories if categories is None else tuple(categories),
                importance=importance or message.importance,
                modified_at=self.now(),
                changed_seq=mailbox.next_seq(),
            )
            self._put(mailbox, updated)
            if updated.is_read != message.is_read:
                self._touch_folder(mailbox, message.folder_id)
        self._notify([MailChange(user_id, "updated", updated.folder_id, updated)])
        return updated

    def move_message(self, user_id: str, ref: str, destination_ref: str) -> MailMessage:
        """Move a message; it gets a new REST id (its immutable id stays)."""
        with self._lock:
            mailbox = self._mailbox(user_id)
            message = self._message(mailbox, ref)
            destination = self._folder(mailbox, destination_ref)
            if destination.id == message.folder_id:
                return message
            left = self._remove(mailbox, message, "changed")
            seq = mailbox.next_seq()
            moved = replace(
                message,
                rest_id=_opaque_id("AAMkAG"),
                folder_id=destination.id,
                modified_at=self.now(),
                changed_seq=seq,
                entered_seq=seq,
            )
            self._put(mailbox, moved)
            self._touch_folder(mailbox, destination.id)
        self._notify([left, MailChange(user_id, "created", destination.id, moved)])
        return moved

    def delete_message(self, user_id: str, ref: str) -> None:
        with self._lock:
            mailbox = self._mailbox(user_id)
            change = self._remove(mailbox, self._message(mailbox, ref), "deleted")
        self._notify([change])

    # -- change history -----------------------------------------------------------------------

    def current_seq(self, user_id: str) -> int:
        with self._lock:
            return self._mailbox(user_id).seq

    def message_changes(
        self, user_id: str, folder_id: str, since: int, upto: int, id_type: IdType
    ) -> tuple[list[MailMessage], list[Tombstone]]:
        """Messages now in the folder changed in (since, upto], and removals in that window.

        A removal is dropped when the id the client would see is back in the folder (a message
        moved out and back keeps its immutable id, but not its REST id), and reported once.
        """
        with self._lock:
            mailbox = self._mailbox(user_id)
            in_folder = mailbox.in_folder(folder_id)
            tombstones = [
                t
                for t in mailbox.tombstones
                if t.folder_id == folder_id and since < t.seq <= upto and since > 0
            ]
        present = [m for m in in_folder if since < m.changed_seq <= upto]
        current_ids = {m.id_for(id_type) for m in in_folder} if tombstones else set()
        removed: dict[str, Tombstone] = {}
        for tombstone in tombstones:
            if tombstone.id_for(id_type) not in current_ids:
                removed[tombstone.id_for(id_type)] = tombstone
        return present, list(removed.values())

    def folder_changes(
        self, user_id: str, since: int, upto: int
    ) -> tuple[list[MailFolder], list[FolderTombstone]]:
        with self._lock:
            mailbox = self._mailbox(user_id)
            present = [
                f
                for f in mailbox.folders.values()
                if f.well_known_name != ROOT and (since == 0 or since < f.changed_seq <= upto)
            ]
            removed = [t for t in mailbox.folder_tombstones if since < t.seq <= upto and since]
        return present, removed

    def delta_generation(self, user_id: str, scope: str) -> int:
        """Bumped by `expire_delta_tokens`; tokens of an older generation answer 410."""
        with self._lock:
            return self._mailbox(user_id).delta_generations.get(scope, 0)

    def expire_delta_tokens(self, user_id: str, folder_ref: str | None = None) -> None:
        """Kill the delta and skip tokens of one folder (or of all folders and the tree)."""
        with self._lock:
            mailbox = self._mailbox(user_id)
            if folder_ref is None:
                scopes = [*mailbox.folders, FOLDERS_DELTA_SCOPE]
            else:
                scopes = [self._folder(mailbox, folder_ref).id]
            for scope in scopes:
                mailbox.delta_generations[scope] = mailbox.delta_generations.get(scope, 0) + 1

    # -- internals (lock held) ----------------------------------------------------------------

    def _mailbox(self, user_id: str) -> _Mailbox:
        mailbox = self._mailboxes.get(user_id)
        if mailbox is None:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return mailbox

    def _folder(self, mailbox: _Mailbox, ref: str) -> MailFolder:
        folder = mailbox.folders.get(ref)
        if folder is not None:
            return folder
        for candidate in mailbox.folders.values():
            if candidate.well_known_name and candidate.well_known_name == ref.lower():
                return candidate
        raise item_not_found()

    def _message(self, mailbox: _Mailbox, ref: str) -> MailMessage:
        immutable_id = mailbox.rest_ids.get(ref, ref)
        message = mailbox.messages.get(immutable_id)
        if message is None:
            raise item_not_found()
        return message

    def _put(self, mailbox: _Mailbox, message: MailMessage) -> None:
        previous = mailbox.messages.get(message.immutable_id)
        if previous is not None:
            mailbox.rest_ids.pop(previous.rest_id, None)
            self._unindex(mailbox, previous)
        mailbox.messages[message.immutable_id] = message
        mailbox.rest_ids[message.rest_id] = message.immutable_id
        mailbox.by_folder.setdefault(message.folder_id, set()).add(message.immutable_id)
        if not message.is_read:
            mailbox.unread[message.folder_id] = mailbox.unread.get(message.folder_id, 0) + 1

    def _unindex(self, mailbox: _Mailbox, message: MailMessage) -> None:
        mailbox.by_folder.get(message.folder_id, set()).discard(message.immutable_id)
        if not message.is_read:
            mailbox.unread[message.folder_id] -= 1

    def _remove(self, mailbox: _Mailbox, message: MailMessage, reason: RemovalReason) -> MailChange:
        seq = mailbox.next_seq()
        mailbox.tombstones.append(
            Tombstone(seq, message.folder_id, message.rest_id, message.immutable_id, reason)
        )
        del mailbox.messages[message.immutable_id]
        mailbox.rest_ids.pop(message.rest_id, None)
        self._unindex(mailbox, message)
        self._touch_folder(mailbox, message.folder_id)
        return MailChange(mailbox.user_id, "deleted", message.folder_id, message)

    def _touch_folder(self, mailbox: _Mailbox, folder_id: str) -> None:
        # Counts are folder properties: a folder whose counts change shows up in folder delta.
        folder = mailbox.folders.get(folder_id)
        if folder is not None:
            mailbox.folders[folder_id] = replace(folder, changed_seq=mailbox.seq)

    def _refuse_duplicate_name(self, mailbox: _Mailbox, parent_id: str, name: str) -> None:
        for folder in mailbox.folders.values():
            if folder.parent_id == parent_id and folder.display_name.lower() == name.lower():
                raise GraphError(
                    409,
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                )

    def _conversation_for(
        self, mailbox: _Mailbox, content: ParsedMessage, internet_message_id: str
    ) -> str:
        # Threads follow In-Reply-To/References, never the subject alone.
        for parent in (content.in_reply_to, *reversed(content.references)):
            if parent and parent in mailbox.conversations:
                conversation = mailbox.conversations[parent]
                break
        else:
            conversation = _opaque_id("AAQkAG")
        mailbox.conversations.setdefault(internet_message_id, conversation)
        return conversation

    def _notify(self, changes: list[MailChange]) -> None:
        for change in changes:
            for listener in self._listeners:
                listener(change)
