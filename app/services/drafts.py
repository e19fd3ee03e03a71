"""Drafts: create, replace, delete and send them at the provider; the cache follows its answers.

The sync side implements ``DraftWriter`` beside ``MessageWriter`` (``sync.actions.AdapterWriter``
does both, over each adapter's ``sync.providers.mailbox_drafts.DraftActions``); the registered
message writer is used for drafts when it is also a ``DraftWriter``. An adapter without drafts
(IMAP, until it implements ``DraftActions``) answers ``UnsupportedAction``, shown as
``BAD_USER_INPUT`` on ``accountId``. The protocol is four calls, each applying the provider's
answer to the cache (a change event with it) before returning:

    save_draft(account, raw, thread, replacing=None) -> provider id of the draft's message
    delete_draft(account, provider id)
    send_draft(account, provider id) -> provider id of the sent copy, or None (sync requested)

Input is as strict as ``sendMessage`` (``app.services.send.compose_for``: header injection,
addresses, sizes, attachments), except that a draft may lack recipients and a body. A draft's
provider id may change when it is replaced (Gmail gives new content a new message id; Graph's
replacement is a new draft), so ``update_draft`` answers the cache id of the draft as it now
is. A reply draft keeps its In-Reply-To/References across updates (from the cached draft).
Sending a draft goes through ``send_once``: rate limit and idempotency key as ``sendMessage``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from app.models import Account, Message
from app.services.compose import Draft, ReplyTo
from app.services.drafts_attachments import AttachmentInput
from app.services.errors import InvalidInput, NotFound
from app.services.message_actions import ActionFailed, MessageWriter, NoWriter, message_writer
from app.services.send import (
    SendResult,
    check_idempotency_key,
    compose_for,
    replayed_send,
    replied_original,
    send_once,
    thread_provider_id,
    touchable_account,
)
from app.settings import Settings
from app.types import AccountId
from sync.providers.actions import UnsupportedAction
from sync.providers.errors import ProviderError

_T = TypeVar("_T")


@runtime_checkable
class DraftWriter(Protocol):
    """Keeps drafts at the provider and applies its answers to the cache (the sync side)."""

    async def save_draft(
        self,
        account_id: AccountId,
        raw: bytes,
        thread_provider_id: str | None,
        replacing: str | None,
    ) -> str:
        """Create a draft of ``raw`` (``replacing`` None) or replace the content of the draft
        whose message is ``replacing``; the provider id of the draft's message now."""
        ...

    async def delete_draft(self, account_id: AccountId, provider_id: str) -> None:
        """Delete the draft whose message is ``provider_id``."""
        ...

    async def send_draft(self, account_id: AccountId, provider_id: str) -> str | None:
        """Send the draft whose message is ``provider_id``; the sent copy's provider id when
        the provider's answer names it."""
        ...


@dataclass(frozen=True, slots=True)
class DraftRequest:
    """A draft's whole content (an update replaces all of it)."""

    draft: Draft
    reply_to_message_id: int | None = None
    attachments: Sequence[AttachmentInput] = ()


async def create_draft(
    settings: Settings, account_ids: Collection[int], account_id: int, request: DraftRequest
) -> int:
    """Save a new draft in one of ``account_ids``; its cache id."""
    account = await touchable_account(account_ids, account_id)
    reply_to, thread = None, None
    if request.reply_to_message_id is not None:
        reply_to, thread = await replied_original(account.id, request.reply_to_message_id)
    return await _save(settings, account, request, reply_to, thread, replacing=None)


async def update_draft(
    settings: Settings, account_ids: Collection[int], message_id: int, request: DraftRequest
) -> int:
    """Replace the content of a draft; the cache id of the draft as it now is."""
    existing = await _draft_row(account_ids, message_id)
    account = await Account.get(id=existing["account_id"])
    reply_to: ReplyTo | None = None
    if request.reply_to_message_id is not None:
        reply_to, thread = await replied_original(account.id, request.reply_to_message_id)
    else:
        answered = existing["in_reply_to"]
        if answered:
            kept = [ref for ref in existing["references"] or () if ref != answered]
            reply_to = ReplyTo(answered, kept)
        thread = await thread_provider_id(existing["thread_id"])
    replacing = str(existing["provider_id"])
    return await _save(settings, account, request, reply_to, thread, replacing=replacing)


async def delete_draft(account_ids: Collection[int], message_id: int) -> None:
    """Delete a draft at the provider and from the cache."""
    existing = await _draft_row(account_ids, message_id)
    writer = _draft_writer()
    account_id = AccountId(existing["account_id"])
    await _at_provider(writer.delete_draft(account_id, str(existing["provider_id"])))


async def send_draft(
    settings: Settings, account_ids: Collection[int], message_id: int, idempotency_key: str
) -> SendResult:
    """Send a draft as it is at the provider, at most once per idempotency key. A sent draft
    leaves the cache or stops being a draft (Gmail may keep its id for the sent copy), so the
    key is looked up first: in the message's account, or the caller's when the message is gone."""
    check_idempotency_key(idempotency_key)
    found = (
        await Message.filter(id=message_id, account_id__in=list(account_ids))
        .first()
        .values("account_id")
    )
    scope = account_ids if found is None else [found["account_id"]]
    replayed = await replayed_send(scope, idempotency_key)
    if replayed is not None:
        return replayed
    row = await _draft_row(account_ids, message_id)
    account = await Account.get(id=row["account_id"])
    provider_id = str(row["provider_id"])

    async def through(writer: MessageWriter, account_id: AccountId) -> str | None:
        if not isinstance(writer, DraftWriter):
            raise UnsupportedAction(f"{account.provider.value} accounts cannot keep drafts yet")
        return await writer.send_draft(account_id, provider_id)

    header = str(row["message_id_header"] or "")
    return await send_once(settings, account, idempotency_key, header, through)


async def _save(
    settings: Settings,
    account: Account,
    request: DraftRequest,
    reply_to: ReplyTo | None,
    thread: str | None,
    *,
    replacing: str | None,
) -> int:
    outgoing = await compose_for(
        settings,
        account,
        request.draft,
        request.attachments,
        reply_to,
        thread,
        require_recipient=False,
    )
    writer = _draft_writer()
    provider_id = await _at_provider(
        writer.save_draft(AccountId(account.id), outgoing.raw, thread, replacing)
    )
    saved = await Message.get(account_id=account.id, provider_id=provider_id)
    return int(saved.id)


async def _draft_row(account_ids: Collection[int], message_id: int) -> dict[str, Any]:
    row = (
        await Message.filter(id=message_id, account_id__in=list(account_ids))
        .first()
        .values(
            "account_id",
            "provider_id",
            "draft",
            "message_id_header",
            "in_reply_to",
            "references",
            "thread_id",
        )
    )
    if row is None:
        raise NotFound("draft not found")
    if not row["draft"]:
        raise InvalidInput("this message is not a draft", field="id")
    return row


def _draft_writer() -> DraftWriter:
    writer = message_writer()
    if writer is None or not isinstance(writer, DraftWriter):
        raise NoWriter("this server cannot keep drafts at providers")
    return writer


async def _at_provider(call: Awaitable[_T]) -> _T:
    try:
        return await call
    except UnsupportedAction as error:
        raise InvalidInput(str(error), field="accountId") from None
    except ProviderError as error:
        raise ActionFailed(
            f"the provider refused the draft action ({error.code})", provider_code=error.code
        ) from None
