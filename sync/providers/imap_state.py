"""Where an IMAP mailbox's sync stands: full-sync page tokens and cursors, one JSON format.

Both are compact JSON strings the engine stores without looking inside::

    {"v": 1, "kind": "page" | "cursor",
     "folders": [{"name": "INBOX",            mailbox name on the wire (= folder provider id)
                  "role": "inbox",
                  "validity": 1700000000,     UIDVALIDITY the UIDs below belong to
                  "uid": 4711,                highest UID handed over (page: fetched so far)
                  "end": 4800,                page only: UIDNEXT-1 pinned when the sync began
                  "modseq": 9000,             HIGHESTMODSEQ pinned (0: no CONDSTORE)
                  "count": 4650,              messages with UID <= "uid" (expunge detection
                                              without QRESYNC)
                  "total": 4650, "unread": 3, last STATUS MESSAGES/UNSEEN (folder changes)
                  "resets": [1700000000],     epoch seconds of recent UIDVALIDITY changes
                  "frozen_until": 0}, ...]}   too many resets: left alone until then

A message is (folder, UIDVALIDITY, UID), so a folder's state is worthless under another
UIDVALIDITY: the adapter then lists the folder again (see ``imap``). Anything unreadable raises
``CursorExpired`` and the engine starts one full sync. This module never holds a credential or
message content and never touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from app.types import FolderRole
from sync.providers.errors import CursorExpired

StateKind = Literal["page", "cursor"]
VERSION = 1
RESET_WINDOW_SECONDS = 24 * 3600
MAX_RESETS_PER_WINDOW = 3


@dataclass
class FolderState:
    """One folder and where its sync stands; see the module docstring for the fields."""

    name: str
    role: FolderRole
    validity: int
    uid: int = 0
    end: int = 0
    modseq: int = 0
    count: int = 0
    total: int = 0
    unread: int = 0
    resets: list[int] = field(default_factory=list)
    frozen_until: int = 0

    @property
    def done(self) -> bool:
        """Full sync only: every message up to the pinned end has been fetched."""
        return self.uid >= self.end

    def restart(self, validity: int, now: int) -> bool:
        """Forget the UIDs of the old UIDVALIDITY; False (and frozen) past the reset cap."""
        self.resets = [t for t in self.resets if now - t < RESET_WINDOW_SECONDS]
        if len(self.resets) >= MAX_RESETS_PER_WINDOW:
            self.frozen_until = self.resets[0] + RESET_WINDOW_SECONDS
            return False
        self.resets.append(now)
        self.validity, self.uid, self.modseq, self.count, self.frozen_until = validity, 0, 0, 0, 0
        return True


@dataclass
class SyncState:
    """Every folder's state, in a stable order (INBOX first)."""

    folders: dict[str, FolderState] = field(default_factory=dict)

    def encode(self, kind: StateKind) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "kind": kind,
                "folders": [_folder_json(f, kind) for f in self.folders.values()],
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str, kind: StateKind) -> SyncState:
        """Parse a stored token; anything unreadable means the sync must start over."""
        try:
            raw = json.loads(text)
            if raw["v"] != VERSION or raw["kind"] != kind:
                raise ValueError("another version or kind")
            state = cls()
            for entry in raw["folders"]:
                folder = _folder_from_json(entry, kind)
                state.folders[folder.name] = folder
        except (ValueError, KeyError, TypeError) as error:
            raise CursorExpired(f"unreadable IMAP {kind} state") from error
        return state


def _folder_json(folder: FolderState, kind: StateKind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": folder.name,
        "role": folder.role.value,
        "validity": folder.validity,
        "uid": folder.uid,
        "modseq": folder.modseq,
        "count": folder.count,
        "total": folder.total,
        "unread": folder.unread,
        "resets": folder.resets,
        "frozen_until": folder.frozen_until,
    }
    if kind == "page":
        entry["end"] = folder.end
    return entry


def _folder_from_json(entry: dict[str, Any], kind: StateKind) -> FolderState:
    name = entry["name"]
    if not isinstance(name, str):
        raise TypeError("a folder name must be a string")
    return FolderState(
        name=name,
        role=FolderRole(entry["role"]),
        validity=_number(entry["validity"]),
        uid=_number(entry["uid"]),
        end=_number(entry["end"]) if kind == "page" else 0,
        modseq=_number(entry["modseq"]),
        count=_number(entry["count"]),
        total=_number(entry["total"]),
        unread=_number(entry["unread"]),
        resets=[_number(t) for t in entry["resets"]],
        frozen_until=_number(entry["frozen_until"]),
    )


def _number(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError("expected a non-negative integer")
    return value
