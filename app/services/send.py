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
(``Settings.sends_per_minute``).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from app.models import Account, Message, SendKey, Thread
from app.services.compose import Draft, Recipient, ReplyTo, build_mime
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.message_actions import ActionFailed, NoWriter, message_writer
from app.settings import Settings
from app.types import AccountId
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


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id_header: str
    provider_message_id: str | None
    duplicate: bool


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
    key = request.idempotency_key
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidInput(f"1 to {MAX_KEY_CHARS} printable characters", field="idempotencyKey")
    account = await Account.filter(id=request.account_id, id__in=list(account_ids)).first()
    if account is None:
        raise NotFound("account not found")
    reply_to, thread_provider_id = None, None
    if request.reply_to_message_id is not None:
        original = (
            await Message.filter(id=request.reply_to_message_id, account_id=account.id)
            .first()
            .values("message_id_header", "references", "thread_id")
        )
        if original is None:
            raise InvalidInput("message not found in this account", field="replyToId")
        reply_to = ReplyTo(original["message_id_header"], list(original["references"] or ()))
        if original["thread_id"] is not None:
            thread = await Thread.filter(id=original["thread_id"]).first()
            thread_provider_id = None if thread is None else thread.provider_id
    sender = Recipient(account.address, account.display_name)
    domain = account.address.rpartition("@")[2] or "inbox-api"
    raw, message_id = build_mime(sender, request.draft, reply_to=reply_to, domain=domain)

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
        provider_id = await writer.send(AccountId(account.id), raw, thread_provider_id)
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
    return SendResult(message_id, provider_id, duplicate=False)


def _replayed(stored: SendKey) -> SendResult:
    if stored.state == "sent":
        return SendResult(stored.message_id_header, stored.provider_message_id, duplicate=True)
    if stored.state == "sending":
        raise Conflict("a send with this idempotency key is in progress")
    raise Conflict("a send with this idempotency key failed in transit; it may have been sent")
