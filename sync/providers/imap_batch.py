"""Assembling one ``ChangeBatch`` from folder steps, and the folder list's bookkeeping.

``Collected`` gathers what each folder step (``imap_sync``) contributes, within the page's
budget of new messages, and turns a folder that vanished mid-step into a ``FolderResync`` that
empties it. ``pinned`` is a folder's state at the start of a full sync (its STATUS), and
``reconcile`` brings a cursor's folder list up to date with a fresh LIST-STATUS: folders that
are gone are emptied (a rename is a delete plus a new folder), new ones start from UID 1.
``unchanged`` is the cheap test that lets a poll skip a folder without selecting it.
No I/O here besides awaiting the steps it is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from sync.providers.imap_folders import Mailbox
from sync.providers.imap_state import FolderState, SyncState
from sync.providers.imap_sync import FolderChanges, FolderGone, Options
from sync.providers.records import FlagsRecord, FolderResync, MessageRecord

NO_UIDNEXT = 2**32  # past any UID: a server without UIDNEXT in STATUS is fetched to the end


class Collected:
    """The parts of one batch, gathered folder by folder."""

    def __init__(self) -> None:
        self.upserts: list[MessageRecord] = []
        self.flag_updates: list[FlagsRecord] = []
        self.deletions: list[str] = []
        self.resyncs: list[FolderResync] = []
        self.more = False

    def budget(self, page_size: int) -> int:
        return page_size - len(self.upserts)

    async def run(
        self, step: Awaitable[FolderChanges], state: SyncState, folder: FolderState
    ) -> bool:
        """Add one folder step's changes; False when the folder turned out to be gone."""
        try:
            changes = await step
        except FolderGone:
            del state.folders[folder.name]
            self.resyncs.append(FolderResync(folder.name))
            return False
        self.upserts.extend(changes.upserts)
        self.flag_updates.extend(changes.flag_updates)
        self.deletions.extend(changes.deletions)
        if changes.resync is not None:
            self.resyncs.append(changes.resync)
        self.more |= changes.more
        return True


def pinned(mailbox: Mailbox) -> FolderState:
    """A folder's state as a full sync starts: everything below UIDNEXT is still to fetch."""
    status = mailbox.status
    return FolderState(
        name=mailbox.name,
        role=mailbox.role,
        validity=status.get("UIDVALIDITY", 0),
        end=max(status.get("UIDNEXT", NO_UIDNEXT) - 1, 0),
        modseq=status.get("HIGHESTMODSEQ", 0),
        total=status.get("MESSAGES", 0),
        unread=status.get("UNSEEN", 0),
    )


def reconcile(state: SyncState, mailboxes: Sequence[Mailbox], resyncs: list[FolderResync]) -> bool:
    """Bring the folder list of ``state`` up to date; True when any folder changed."""
    current = {m.name: m for m in mailboxes if m.syncable}
    changed = False
    for name in [name for name in state.folders if name not in current]:
        del state.folders[name]
        resyncs.append(FolderResync(name))  # deleted or renamed: its cached messages go
        changed = True
    for name, mailbox in current.items():
        folder = state.folders.get(name)
        if folder is None:
            folder = state.folders[name] = FolderState(
                name, mailbox.role, validity=mailbox.status.get("UIDVALIDITY", 0)
            )
            changed = True
        counts = (mailbox.role, mailbox.status.get("MESSAGES", 0), mailbox.status.get("UNSEEN", 0))
        if counts != (folder.role, folder.total, folder.unread):
            folder.role, folder.total, folder.unread = counts
            changed = True
    return changed


def unchanged(folder: FolderState, status: dict[str, int], options: Options) -> bool:
    """Whether STATUS proves nothing happened in the folder since its state was taken
    (HIGHESTMODSEQ moves with every change, RFC 7162)."""
    return (
        options.condstore
        and folder.modseq > 0
        and status.get("UIDVALIDITY") == folder.validity
        and status.get("HIGHESTMODSEQ") == folder.modseq
        and status.get("UIDNEXT", NO_UIDNEXT) - 1 <= folder.uid
    )
