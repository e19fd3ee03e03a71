"""IMAP mailboxes -> folders: LIST with special-use roles (RFC 6154) and per-folder STATUS.

One round trip when the server has LIST-STATUS (RFC 5819): ``LIST "" "*" RETURN (SPECIAL-USE
STATUS (MESSAGES UNSEEN UIDVALIDITY UIDNEXT HIGHESTMODSEQ))``; otherwise a plain LIST and one
STATUS per folder. The folder's provider id is its mailbox name as the server spells it on the
wire (modified UTF-7), which is also what SELECT takes back; the display name is the decoded
last path segment, and the parent is the mailbox above it when that one is listed.

Roles: INBOX -> inbox; \\Sent, \\Drafts, \\Trash, \\Junk, \\Archive -> their roles; \\Flagged
-> starred. Which folders hold messages to sync (``syncable``): not \\Noselect/\\NonExistent,
and not the virtual views \\All, \\Flagged and \\Important, whose messages live in other folders
too (their copies would duplicate the cache; PROVIDERS.md I6 is the way to sync Gmail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.types import FolderRole
from sync.providers.imap_connection import ImapConnection
from sync.providers.imap_protocol import (
    Item,
    Response,
    as_int,
    as_list,
    as_text,
    decode_mailbox_name,
    pairs,
    quote,
)
from sync.providers.records import FolderRecord

STATUS_ITEMS = ("MESSAGES", "UNSEEN", "UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ")
SPECIAL_USE_ROLES = {
    "\\SENT": FolderRole.SENT,
    "\\DRAFTS": FolderRole.DRAFTS,
    "\\TRASH": FolderRole.TRASH,
    "\\JUNK": FolderRole.SPAM,
    "\\ARCHIVE": FolderRole.ARCHIVE,
    "\\FLAGGED": FolderRole.STARRED,
}
VIRTUAL = frozenset({"\\ALL", "\\FLAGGED", "\\IMPORTANT"})
NOT_SELECTABLE = frozenset({"\\NOSELECT", "\\NONEXISTENT"})


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One LISTed mailbox and, when asked for, its STATUS numbers (missing ones are absent)."""

    name: str
    delimiter: str | None
    attributes: frozenset[str]
    status: dict[str, int] = field(default_factory=dict)

    @property
    def role(self) -> FolderRole:
        if self.name.upper() == "INBOX":
            return FolderRole.INBOX
        for attribute, role in SPECIAL_USE_ROLES.items():
            if attribute in self.attributes:
                return role
        return FolderRole.CUSTOM

    @property
    def syncable(self) -> bool:
        return not self.attributes & (NOT_SELECTABLE | VIRTUAL)


async def list_mailboxes(connection: ImapConnection, *, with_status: bool) -> list[Mailbox]:
    """Every mailbox, INBOX first; with ``with_status`` the STATUS of each syncable one."""
    caps = connection.capabilities
    if with_status and connection.selected is not None:
        # STATUS of the selected mailbox answers from the session's own, possibly stale view
        # (RFC 3501 6.3.10): leave it first. UNSELECT, never CLOSE (which expunges).
        await connection.run("UNSELECT" if "UNSELECT" in caps else "NOOP")
        connection.selected = None
    wanted = [item for item in STATUS_ITEMS if item != "HIGHESTMODSEQ" or "CONDSTORE" in caps]
    command = 'LIST "" "*"'
    if "SPECIAL-USE" in caps and "LIST-EXTENDED" in caps:
        command += " RETURN (SPECIAL-USE"
        command += (
            f" STATUS ({' '.join(wanted)}))" if with_status and "LIST-STATUS" in caps else ")"
        )
    found: dict[str, Mailbox] = {}
    statuses: dict[str, dict[str, int]] = {}
    for response in await connection.run(command):
        if response.kind == "LIST":
            mailbox = _mailbox(response.items)
            found[mailbox.name] = mailbox
        elif response.kind == "STATUS":
            name, numbers = _status(response)
            statuses[name] = numbers
    mailboxes = sorted(found.values(), key=lambda m: (m.role is not FolderRole.INBOX, m.name))
    if not with_status:
        return mailboxes
    result: list[Mailbox] = []
    for mailbox in mailboxes:
        known = statuses.get(mailbox.name)
        if known is None and mailbox.syncable:
            known = await mailbox_status(connection, mailbox.name, wanted)
        result.append(Mailbox(mailbox.name, mailbox.delimiter, mailbox.attributes, known or {}))
    return result


async def mailbox_status(
    connection: ImapConnection, name: str, items: Sequence[str] = STATUS_ITEMS
) -> dict[str, int]:
    for response in await connection.run(f"STATUS {quote(name)} ({' '.join(items)})"):
        if response.kind == "STATUS":
            found, numbers = _status(response)
            if found == name:
                return numbers
    return {}


def folder_records(mailboxes: Sequence[Mailbox]) -> list[FolderRecord]:
    names = {mailbox.name for mailbox in mailboxes}
    return [_record(mailbox, names) for mailbox in mailboxes]


def _record(mailbox: Mailbox, names: set[str]) -> FolderRecord:
    leaf, parent = mailbox.name, None
    if mailbox.delimiter and mailbox.delimiter in mailbox.name:
        above, _, leaf = mailbox.name.rpartition(mailbox.delimiter)
        parent = above if above in names else None
    return FolderRecord(
        provider_id=mailbox.name,
        name=decode_mailbox_name(leaf),
        role=mailbox.role,
        parent_provider_id=parent,
        total_count=mailbox.status.get("MESSAGES", 0),
        unread_count=mailbox.status.get("UNSEEN", 0),
    )


def _mailbox(items: list[Item]) -> Mailbox:
    attributes, delimiter, name = items[0], items[1], items[2]
    return Mailbox(
        name=as_text(name),
        delimiter=None if delimiter is None else as_text(delimiter),
        attributes=frozenset(as_text(a).upper() for a in as_list(attributes)),
    )


def _status(response: Response) -> tuple[str, dict[str, int]]:
    name, numbers = response.items[0], response.items[1]
    return as_text(name), {key: as_int(value) for key, value in pairs(as_list(numbers)).items()}
