"""Folding Gmail ``history.list`` records into one net change per message.

Gmail reports every change in order (G2, G3): ``messagesAdded``, ``labelsAdded``,
``labelsRemoved``, ``messagesDeleted``. A sync batch only needs where each message ended up:

    added ............................. fetch it (the fetch shows its current labels)
    added, relabelled ................. fetch it; the relabelling is already in what we fetch
    added, ..., deleted ............... deleted (never fetched, never created)
    relabelled (not added here) ....... FlagsRecord with the labels of its last record
    relabelled, deleted ............... deleted
    deleted ........................... deleted

A label change never creates a message (the FlagsRecord is ignored for a message the cache does
not hold). ``covered`` is the highest record id folded so far: every record up to it has been
seen, so it is a safe place to resume if a batch stops before the listing's last page. Pure; no
I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.providers.gmail_records import flags_record
from sync.providers.records import FlagsRecord

JSON = Mapping[str, Any]
_LABEL_CHANGES = ("labelsAdded", "labelsRemoved")


@dataclass
class HistoryFold:
    """Net effect of the history records folded so far (dicts keep first-seen order)."""

    covered: int
    added: dict[str, None] = field(default_factory=dict)
    relabelled: dict[str, JSON] = field(default_factory=dict)
    deleted: dict[str, None] = field(default_factory=dict)

    def fold(self, records: Iterable[JSON]) -> None:
        """Fold one page of ``history`` records, in the order Gmail listed them."""
        for record in records:
            for entry in record.get("messagesAdded", ()):
                self._add(entry["message"]["id"])
            for kind in _LABEL_CHANGES:
                for entry in record.get(kind, ()):
                    self._relabel(entry["message"])
            for entry in record.get("messagesDeleted", ()):
                self._delete(entry["message"]["id"])
            self.covered = max(self.covered, int(record["id"]))

    def flag_updates(self) -> list[FlagsRecord]:
        return [flags_record(message) for message in self.relabelled.values()]

    def _add(self, message_id: str) -> None:
        self.deleted.pop(message_id, None)
        self.relabelled.pop(message_id, None)
        self.added[message_id] = None

    def _relabel(self, message: JSON) -> None:
        message_id = message["id"]
        if message_id not in self.added and message_id not in self.deleted:
            # Re-insert so a later change moves the message to the end, as it happened.
            self.relabelled.pop(message_id, None)
            self.relabelled[message_id] = message

    def _delete(self, message_id: str) -> None:
        self.added.pop(message_id, None)
        self.relabelled.pop(message_id, None)
        self.deleted[message_id] = None
