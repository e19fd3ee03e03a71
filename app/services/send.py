"""Sending mail: strict input, a per-account rate limit, and idempotency keys stored per account.

``send_message`` checks and builds the message first (``app.services.compose``: nothing reaches
a provider when the input is refused), then looks up the idempotency key in ``send_keys``::

    no row        -> take a token of the account's bucket (RATE_LIMITED when empty), reserve
                     the key (state "sending"), send through the registered ``MessageWriter``
    "sent"        -> the stored result again, nothing sent (``duplicate=True``)
    "sending"     -> CONFLICT: another request with this key is in flight
    "unknown"     -> CONFLICT: a transport failure left it unknown whether the provider sent it

The provider refusing a send (4xx, an expired grant, a rate limit) frees the key for a retry; a
transient failure (5xx, a timeout: the message may have left) keeps it as "unknown", so a retry
never sends twice. The rate limit is a token bucket per account in this process
(``Settings.sends_per_minute``). ``send_once`` is that protocol for any send, so sending a draft
(``app.services.drafts``) shares it; ``compose_for`` builds a message for an account (replies,
attachments, the provider's size limit) for both.

The cache after a send: the writer applies the sent copy when the provider's answer names it
(Gmail: fetched by the id ``messages.send`` returns). Graph's ``sendMail`` answers 202 without
it, so the account is made due (``request_sync_now``) and the result says ``sync_requested``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace

from tortoise.exceptions import IntegrityError

from app.models import Account, Message, SendKey, Thread
from app.services.compose import Draft, Recipient, ReplyTo, build_mime, check_message_size
from app.services.drafts_attachments import AttachmentInput, resolve_attachments
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.message_actions import ActionFailed, MessageWriter, NoWriter, message_writer
from app.services.sync_control import request_sync_now
from app.settings import Settings
from app.types import AccountId, Provider
from sync.providers.actions import UnsupportedAction
from sync.providers.errors import ProviderError, TransientError

MAX_KEY_CHARS = 200


class RateLimited(ServiceError):
    code = "RATE_LIMITED"


@dataclass(frozen=True, slots=True)
class SendRequest:
    account_id: int
    draft: Draft
    idempotency_key: str
    reply_to_message_id: int | None = None
    attachments: Sequence[AttachmentInput] = ()


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id_header: str
    provider_message_id: str | None
    duplicate: bool
    sync_requested: bool = False
    """The provider answered without the sent copy (Graph): the account was made due, and the
    copy reaches the cache with that sync."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message built for one account, checked and ready for the provider."""

    account: Account
    raw: bytes
    message_id: str
    thread_provider_id: str | None


SendThrough = Callable[[MessageWriter, AccountId], Awaitable[str | None]]


class _Bucket:
    def __init__(self, per_minute: int) -> None:
        self.tokens = float(per_minute)
        self.stamp = _now()

    def take(self, per_minute: int) -> bool:
        now = _now()
        self.tokens = min(float(per_minute), self.tokens + (now - self.stamp) * per_minute / 60)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


_buckets: dict[int, _Bucket] = {}
_now = time.monotonic  # the buckets' clock (tests replace it)


def reset_rate_limits() -> None:
    """Forget every bucket (tests)."""
    _buckets.clear()


async def send_message(
    settings: Settings, account_ids: Collection[int], request: SendRequest
) -> SendResult:
    """Send ``request`` from one of ``account_ids`` (the accounts the caller may touch)."""
    check_idempotency_key(request.idempotency_key)
    account = await touchable_account(account_ids, request.account_id)
    reply_to, thread_provider_id = None, None
    if request.reply_to_message_id is not None:
        reply_to, thread_provider_id = await replied_original(
            account.id, request.reply_to_message_id
        )
    outgoing = await compose_for(
        settings, account, request.draft, request.attachments, reply_to, thread_provider_id
    )

    async def through(writer: MessageWriter, account_id: AccountId) -> str | None:
        return await writer.send(account_id, outgoing.raw, outgoing.thread_provider_id)

    return await send_once(settings, account, request.idempotency_key, outgoing.message_id, through)


def check_idempotency_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidInput(f"1 to {MAX_KEY_CHARS} printable characters", field="idempotencyKey")


async def touchable_account(account_ids: Collection[int], account_id: int) -> Account:
    """The account when the caller may touch it; ``NotFound`` otherwise."""
    account = await Account.filter(id=account_id, id__in=list(account_ids)).first()
    if account is None:
        raise NotFound("account not found")
    return account


async def replied_original(account_id: int, message_id: int) -> tuple[ReplyTo, str | None]:
    """What a reply to the cached ``message_id`` threads on: its headers and thread."""
    original = (
        await Message.filter(id=message_id, account_id=account_id)
        .first()
        .values("message_id_header", "references", "thread_id")
    )
    if original is None:
        raise InvalidInput("message not found in this account", field="replyToId")
    reply_to = ReplyTo(original["message_id_header"], list(original["references"] or ()))
    return reply_to, await thread_provider_id(original["thread_id"])


async def thread_provider_id(thread_id: int | None) -> str | None:
    if thread_id is None:
        return None
    thread = await Thread.filter(id=thread_id).first()
    return None if thread is None else thread.provider_id


async def compose_for(
    settings: Settings,
    account: Account,
    draft: Draft,
    attachments: Sequence[AttachmentInput],
    reply_to: ReplyTo | None,
    thread_provider_id: str | None,
    *,
    require_recipient: bool = True,
) -> Outgoing:
    """Check and build ``draft`` from ``account``, attachments included, within the size limit
    of the account's provider; nothing reaches a provider."""
    parts = await resolve_attachments(settings, account.id, attachments)
    sender = Recipient(account.address, account.display_name)
    domain = account.address.rpartition("@")[2] or "inbox-api"
    # A message near the size limit takes a second or more to encode: off the event loop.
    raw, message_id = await asyncio.to_thread(
        build_mime,
        sender,
        replace(draft, attachments=parts),
        reply_to=reply_to,
        domain=domain,
        require_recipient=require_recipient,
    )
    limit = settings.max_message_bytes
    if account.provider == Provider.GRAPH:
        limit = min(limit, settings.graph_max_message_bytes)
    return Outgoing(account, check_message_size(raw, limit), message_id, thread_provider_id)


async def send_once(
    settings: Settings, account: Account, key: str, message_id: str, through: SendThrough
) -> SendResult:
    """Send at most once per (account, ``key``): the stored result when the key was used, else
    a rate-limit token, the key reserved, ``through`` the writer, and the key's new state."""
    stored = await SendKey.filter(account_id=account.id, key=key).first()
    if stored is not None:
        return _replayed(stored)
    writer = message_writer()
    if writer is None:
        raise NoWriter("this server cannot send through providers")
    bucket = _buckets.setdefault(account.id, _Bucket(settings.sends_per_minute))
    if not bucket.take(settings.sends_per_minute):
        raise RateLimited("too many messages sent from this account; try again shortly")
    try:
        row = await SendKey.create(
            account_id=account.id, key=key, state="sending", message_id_header=message_id
        )
    except IntegrityError:
        stored = await SendKey.get(account_id=account.id, key=key)
        return _replayed(stored)
    try:
        provider_id = await through(writer, AccountId(account.id))
    except UnsupportedAction as error:
        await SendKey.filter(id=row.id).delete()
        raise InvalidInput(str(error), field="accountId") from None
    except ProviderError as error:
        if isinstance(error, TransientError):
            await SendKey.filter(id=row.id).update(state="unknown")
        else:
            await SendKey.filter(id=row.id).delete()
        raise ActionFailed(
            f"the provider did not send the message ({error.code})", provider_code=error.code
        ) from None
    await SendKey.filter(id=row.id).update(state="sent", provider_message_id=provider_id)
    if provider_id is None:
        await request_sync_now(AccountId(account.id))
    return SendResult(message_id, provider_id, duplicate=False, sync_requested=provider_id is None)


async def replayed_send(account_ids: Collection[int], key: str) -> SendResult | None:
    """The answer of an earlier send with ``key`` from one of ``account_ids``, if any."""
    stored = await SendKey.filter(account_id__in=list(account_ids), key=key).first()
    return None if stored is None else _replayed(stored)


def _replayed(stored: SendKey) -> SendResult:
    if stored.state == "sent":
        return SendResult(
            stored.message_id_header,
            stored.provider_message_id,
            duplicate=True,
            sync_requested=stored.provider_message_id is None,
        )
    if stored.state == "sending":
        raise Conflict("a send with this idempotency key is in progress")
    raise Conflict("a send with this idempotency key failed in transit; it may have been sent")
