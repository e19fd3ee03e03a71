"""The labels of one emulated Gmail mailbox: Gmail's system labels plus user labels ``Label_N``.

Not thread-safe by itself: a ``Mailbox`` owns one registry and calls it under its own lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from emulators.gmail_errors import GmailError

SYSTEM_LABEL_IDS: tuple[str, ...] = (
    "CHAT",
    "SENT",
    "INBOX",
    "IMPORTANT",
    "TRASH",
    "DRAFT",
    "SPAM",
    "CATEGORY_FORUMS",
    "CATEGORY_UPDATES",
    "CATEGORY_PERSONAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "STARRED",
    "UNREAD",
)

# Gmail refuses to set these through messages.modify: they follow from sending and drafting.
UNMODIFIABLE_LABEL_IDS = frozenset({"SENT", "DRAFT", "CHAT"})


@dataclass(frozen=True)
class Label:
    """A label resource, without the counters (those are computed when asked for)."""

    id: str
    name: str
    type: str

    @property
    def is_system(self) -> bool:
        return self.type == "system"


class LabelRegistry:
    """System labels plus user labels with ids ``Label_1``, ``Label_2``, ..."""

    def __init__(self) -> None:
        self._labels = {
            label_id: Label(label_id, label_id, "system") for label_id in SYSTEM_LABEL_IDS
        }
        self._next_user_number = 1

    def all(self) -> list[Label]:
        return list(self._labels.values())

    def get(self, label_id: str) -> Label:
        label = self._labels.get(label_id)
        if label is None:
            raise GmailError.not_found()
        return label

    def by_name(self, name: str) -> Label | None:
        wanted = name.casefold()
        return next((lb for lb in self._labels.values() if lb.name.casefold() == wanted), None)

    def create(self, name: str) -> Label:
        if not name.strip():
            raise GmailError.invalid("Invalid label name")
        if self.by_name(name) is not None:
            raise GmailError(409, "Label name exists or conflicts", "duplicate")
        label = Label(f"Label_{self._next_user_number}", name, "user")
        self._next_user_number += 1
        self._labels[label.id] = label
        return label

    def check(self, label_ids: Iterable[str], *, for_modify: bool = False) -> None:
        """Raise Gmail's 400 for an unknown label (or one ``messages.modify`` may not touch)."""
        for label_id in label_ids:
            if label_id not in self._labels or (for_modify and label_id in UNMODIFIABLE_LABEL_IDS):
                raise GmailError.invalid(f"Invalid label: {label_id}")
