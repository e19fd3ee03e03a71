"""The interface the sync engine drives, one adapter per connected mailbox.

An adapter turns one provider's API into ``ChangeBatch`` records and typed errors
(``sync.providers.errors``). It owns no state that must survive a restart: everything the engine
needs to resume is in the strings it returns (``next_page_token``, ``cursor``), which the engine
stores in the same transaction as the rows of the batch that carried them::

                  +-------------------------------------------+
                  v                                           |
    (no cursor) --> full_sync_page(None) --> full_sync_page(token) ...  last page: cursor=C
                                                              |
                                                              v
              +--> changes_since(C) --> batch.cursor=C' --> store C' with the rows ----+
              |        |  complete=False: call again at once with C'                   |
              |        |  complete=True: wait for a push or the next poll              |
              +--------+---------------------------------------------------------------+
                       |
                       +-- CursorExpired --> drop the cursor, exactly one new full sync

- A full sync is a sequence of ``full_sync_page`` calls. The first (``page_token=None``) pins
  the provider's change position *before* it lists anything, so mail that changes during a long
  full sync is caught afterwards by ``changes_since``. Every page but the last carries
  ``next_page_token`` (store it with the page: a killed worker resumes there); the last carries
  ``next_page_token=None`` and the ``cursor`` to use from then on. Only the first page carries
  ``folders``.
- ``changes_since(cursor)`` returns what changed after ``cursor``, maybe in several batches
  (``complete=False`` means call again with the batch's cursor). A record always carries the
  latest full state, so replaying a batch after a crash changes nothing.
- ``RateLimited`` and ``TransientError`` leave the cursor untouched: the engine backs off (with
  ``retry_after`` when given) and repeats the same call. The adapter itself never sleeps.
- ``AuthExpired``: the access token was refused even after a refresh; retry later.
  ``AuthRevoked`` (raised by the token source): the account needs re-authorisation.

Adapters never touch the database, never log tokens or message content, and never keep bodies:
``fetch_content`` and ``fetch_attachment`` hand them to the caller and forget them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sync.providers.records import AttachmentRecord, ChangeBatch, FolderRecord, MessageContent

TokenSource = Callable[[bool], Awaitable[str]]
"""``await token_source(force_refresh)`` -> a bearer access token.

With ``False`` it may return a cached token (refreshing it first if it knows it has expired);
with ``True`` it must refresh. It raises ``AuthRevoked`` when the refresh answers
``invalid_grant``. It must return the newest token it has, so that callers that raced a refresh
pick up its result.
"""


class MailboxAdapter(Protocol):
    """One mailbox at one provider, as the sync engine sees it."""

    async def list_folders(self) -> list[FolderRecord]:
        """Every folder (or label) with its role."""
        ...

    async def full_sync_page(self, page_token: str | None, *, with_content: bool) -> ChangeBatch:
        """One page of a full sync; ``page_token`` is None to start, then the previous page's
        ``next_page_token``. ``with_content`` fetches bodies into ``MessageRecord.content``."""
        ...

    async def changes_since(self, cursor: str, *, with_content: bool) -> ChangeBatch:
        """What changed after ``cursor``; raises ``CursorExpired`` when it is too old."""
        ...

    async def fetch_content(self, provider_id: str) -> MessageContent:
        """Bodies, headers and raw MIME of one message, fetched now and not kept."""
        ...

    async def fetch_attachment(self, provider_id: str, attachment: AttachmentRecord) -> bytes:
        """The decoded bytes of one attachment of one message."""
        ...

    async def aclose(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        ...
