"""Where a Graph mailbox's sync stands: full-sync page tokens and delta cursors, one format.

Both are compact JSON strings the engine stores without looking inside:

    {"v": 1, "kind": "page" | "cursor",
     "tree": "/v1.0/me/mailFolders/delta?$deltatoken=...",     the folder tree's deltaLink
     "root": "<id of msgfolderroot>", "known": {"inbox": "<id>", ...},   well-known folders
     "folders": [{"id", "name", "parent", "role", "total", "unread",   the FolderRecord
                  "link": null | nextLink | deltaLink, "done": bool,   its message delta
                  "restarted": bool}, ...]}

Links are kept relative to the base URL (so a cursor survives a change of host name) and stay
opaque. In a cursor every folder is "done" (its link is a deltaLink, M2). A page token may hold
folders not started yet (link null) or in the middle of their first round (a nextLink), so a
killed worker resumes where the last stored page ended. "restarted" marks a folder whose skip
token died during the full sync (its listing ends the pass). This module must never hold a
credential or message content, and never touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from app.types import FolderRole
from sync.providers.errors import CursorExpired
from sync.providers.records import FolderRecord

StateKind = Literal["page", "cursor"]
VERSION = 1


@dataclass
class FolderSync:
    """One folder and where its message delta stands."""

    folder: FolderRecord
    link: str | None = None
    done: bool = False
    restarted: bool = False


@dataclass
class SyncState:
    """Everything needed to continue a Graph sync; see the module docstring for the JSON."""

    tree_link: str
    root_id: str | None
    well_known: dict[str, str]
    """Well-known name (inbox, sentitems...) -> folder id, for those the mailbox has."""
    folders: dict[str, FolderSync] = field(default_factory=dict)

    def folder_records(self) -> list[FolderRecord]:
        return [sync.folder for sync in self.folders.values()]

    def encode(self, kind: StateKind) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "kind": kind,
                "tree": self.tree_link,
                "root": self.root_id,
                "known": self.well_known,
                "folders": [_folder_json(sync) for sync in self.folders.values()],
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
            state = cls(
                tree_link=_string(raw["tree"]),
                root_id=_optional_string(raw["root"]),
                well_known={_string(k): _string(v) for k, v in dict(raw["known"]).items()},
            )
            for entry in raw["folders"]:
                sync = _folder_from_json(entry)
                state.folders[sync.folder.provider_id] = sync
        except (ValueError, KeyError, TypeError) as error:
            raise CursorExpired(f"unreadable Graph {kind} state") from error
        if kind == "cursor" and not all(s.done and s.link for s in state.folders.values()):
            raise CursorExpired("a Graph cursor with an unfinished folder")
        return state


def _folder_json(sync: FolderSync) -> dict[str, Any]:
    folder = sync.folder
    return {
        "id": folder.provider_id,
        "name": folder.name,
        "parent": folder.parent_provider_id,
        "role": folder.role.value,
        "total": folder.total_count,
        "unread": folder.unread_count,
        "link": sync.link,
        "done": sync.done,
        "restarted": sync.restarted,
    }


def _folder_from_json(entry: dict[str, Any]) -> FolderSync:
    return FolderSync(
        folder=FolderRecord(
            provider_id=_string(entry["id"]),
            name=_string(entry["name"]),
            role=FolderRole(entry["role"]),
            parent_provider_id=_optional_string(entry["parent"]),
            total_count=int(entry["total"]),
            unread_count=int(entry["unread"]),
        ),
        link=_optional_string(entry["link"]),
        done=bool(entry["done"]),
        restarted=bool(entry["restarted"]),
    )


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _optional_string(value: object) -> str | None:
    return None if value is None else _string(value)
