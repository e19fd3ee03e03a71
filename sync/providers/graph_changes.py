"""What one incremental Graph round means: upserts, moves, deletions to check, folder resyncs.

Graph tracks changes per folder (M1), so a message moved from folder A to folder B shows up in
one round as "@removed" in A and as a full item in B. `merge_rounds` joins the folders' rounds:

    present in exactly one folder                 -> upsert (a move if A also removed it)
    removed, and present in no folder             -> check with GET /messages/{id}: 404 means
                                                     deleted, found means moved somewhere this
                                                     round did not see (upsert it from there)
    present in two folders, or removed and
      present in the same folder                  -> check with GET, which knows where it is now
    a folder whose delta restarted (410)          -> FolderResync(folder, every id it returned)
    a folder that vanished                        -> FolderResync(folder, nothing)

so a move is never reported as a deletion followed by a creation, and with immutable ids (M7)
the id never changes. Pure logic: this module must never do I/O; the adapter runs the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync.providers.graph_delta import DeltaRound
from sync.providers.records import FolderResync


@dataclass(frozen=True)
class FolderRound:
    folder_id: str
    round: DeltaRound


@dataclass
class MergedRounds:
    present: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> latest Graph item, for messages whose current folder is certain."""
    to_check: set[str] = field(default_factory=set)
    """Ids whose fate only a GET can tell (deleted, or moved where this round did not look)."""
    resyncs: list[FolderResync] = field(default_factory=list)


def merge_rounds(rounds: list[FolderRound], vanished_folders: set[str]) -> MergedRounds:
    merged = MergedRounds()
    seen_in: dict[str, str] = {}
    removed: set[str] = set()
    for folder_round in rounds:
        result = folder_round.round
        for message_id, item in result.present.items():
            if seen_in.setdefault(message_id, folder_round.folder_id) != folder_round.folder_id:
                merged.to_check.add(message_id)
            merged.present[message_id] = item
        merged.to_check |= result.removed & result.present.keys()
        removed |= result.removed
        if result.restarted:
            merged.resyncs.append(FolderResync(folder_round.folder_id, frozenset(result.present)))
    merged.to_check |= removed - merged.present.keys()
    for message_id in merged.to_check:
        merged.present.pop(message_id, None)
    merged.resyncs += [FolderResync(folder_id) for folder_id in sorted(vanished_folders)]
    return merged
