"""The sync side of acting on mail: ``app.services.message_actions.MessageWriter`` over adapters.

``AdapterWriter`` opens the account's adapter (the same factory the sync engine uses), performs
the action message by message, and applies every answer the provider gave to the cache with
``sync.apply.apply_batch`` (no cursor: the sync position is untouched), so the change log and the
``AccountChanged`` event come as they do for synced changes. On a provider failure the answers
received before it are applied and the error is raised: the cache holds what the provider has.
The entry points build one and register it with ``register_message_writer``. It is also the
``app.services.drafts.DraftWriter``: drafts go through the adapter's ``DraftActions``
(``sync.providers.mailbox_drafts``) and their answers are applied the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from app.events import EventBus
from app.models import Account
from app.services.drafts import DraftWriter
from app.services.message_actions import MessageWriter
from app.types import AccountId
from sync.apply import apply_batch
from sync.providers.actions import MessageAction, UnsupportedAction
from sync.providers.adapter import MailboxAdapter
from sync.providers.records import ChangeBatch

OpenAdapter = Callable[[Account], Awaitable[MailboxAdapter]]


class AdapterWriter(MessageWriter, DraftWriter):
    """Acts through the adapters ``open_adapter`` builds; publishes on ``events``."""

    def __init__(self, open_adapter: OpenAdapter, events: EventBus) -> None:
        self._open_adapter = open_adapter
        self._events = events

    async def act(
        self, account_id: AccountId, provider_ids: Sequence[str], action: MessageAction
    ) -> None:
        account = await Account.get(id=account_id)
        adapter = await self._open_adapter(account)
        answers: list[ChangeBatch] = []
        try:
            act = getattr(adapter, "act", None)
            if act is None:
                raise UnsupportedAction(f"{account.provider.value} accounts cannot act on mail yet")
            for provider_id in provider_ids:
                answers.append(await act(provider_id, action))
        finally:
            try:
                if answers:
                    await apply_batch(account_id, _merged(answers), events=self._events)
            finally:
                await adapter.aclose()

    async def send(
        self, account_id: AccountId, raw: bytes, thread_provider_id: str | None
    ) -> str | None:
        answer = await self._call(account_id, "send_mime", "send", raw, thread_provider_id)
        return answer.upserts[0].provider_id if answer.upserts else None

    async def save_draft(
        self,
        account_id: AccountId,
        raw: bytes,
        thread_provider_id: str | None,
        replacing: str | None,
    ) -> str:
        if replacing is None:
            answer = await self._call(
                account_id, "create_draft", "keep drafts", raw, thread_provider_id
            )
        else:
            answer = await self._call(
                account_id, "update_draft", "keep drafts", replacing, raw, thread_provider_id
            )
        return answer.upserts[0].provider_id

    async def delete_draft(self, account_id: AccountId, provider_id: str) -> None:
        await self._call(account_id, "delete_draft", "keep drafts", provider_id)

    async def send_draft(self, account_id: AccountId, provider_id: str) -> str | None:
        answer = await self._call(account_id, "send_draft", "keep drafts", provider_id)
        return answer.upserts[0].provider_id if answer.upserts else None

    async def _call(
        self, account_id: AccountId, method: str, ability: str, *arguments: object
    ) -> ChangeBatch:
        """One adapter call answering a ``ChangeBatch``, applied to the cache when not empty;
        ``UnsupportedAction`` when the account's adapter lacks ``method``."""
        account = await Account.get(id=account_id)
        adapter = await self._open_adapter(account)
        try:
            call = getattr(adapter, method, None)
            if call is None:
                raise UnsupportedAction(f"{account.provider.value} accounts cannot {ability} yet")
            answer: ChangeBatch = await call(*arguments)
        finally:
            await adapter.aclose()
        if answer.upserts or answer.deletions or answer.flag_updates:
            await apply_batch(account_id, answer, events=self._events)
        return answer


def _merged(batches: Sequence[ChangeBatch]) -> ChangeBatch:
    """One batch of several answers (each names other messages)."""
    return ChangeBatch(
        upserts=[record for batch in batches for record in batch.upserts],
        flag_updates=[flags for batch in batches for flags in batch.flag_updates],
        deletions=[provider_id for batch in batches for provider_id in batch.deletions],
    )
