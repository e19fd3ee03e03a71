"""Writes to a mailbox: the actions a client may take on one message, as every adapter sees them.

An adapter that can act on mail (``MessageActions``) performs one ``MessageAction`` on one
message and answers with what the provider says the message is now, as a ``ChangeBatch`` the
caller applies to the cache (``sync.apply``): a flags/labels record, a full record (Graph answers
with the whole item), or a deletion. Provider failures are the typed errors of
``sync.providers.errors``; nothing is retried here and nothing touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sync.providers.records import ChangeBatch


class ActionKind(StrEnum):
    MARK_READ = "mark_read"
    STAR = "star"
    CHANGE_LABELS = "change_labels"
    MOVE = "move"
    ARCHIVE = "archive"
    TRASH = "trash"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class MessageAction:
    """One action. ``flag`` is the wanted read/starred state; ``add``/``remove`` are label ids
    (Gmail); ``folder`` is the target folder's provider id of a move."""

    kind: ActionKind
    flag: bool = True
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    folder: str | None = None


class UnsupportedAction(Exception):
    """The provider has no such action (Graph has no labels); nothing was sent."""


class MessageActions(Protocol):
    """An adapter that can act on the mail of its mailbox."""

    async def act(self, provider_id: str, action: MessageAction) -> ChangeBatch:
        """Perform ``action`` on one message; the message's new state as the provider has it."""
        ...

    async def send_mime(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        """Send ``raw`` (complete MIME; a reply in ``thread_provider_id`` when given); the sent
        message as the provider answers it (an empty batch when it answers without it)."""
        ...
