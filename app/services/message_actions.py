"""Acting on mail: read, star, labels, moves, archive, trash and deletion, through the provider.

Writes go resolver -> this use case -> the provider (DESIGN.md). The read side may not import
the sync side, so, as for content fetch-through (``app.services.message_content``), the sync side
implements ``MessageWriter`` over the provider adapters and ``sync.apply`` and registers it with
``register_message_writer``: it performs the action at the provider, message by message, and
applies what the provider answers to the cache (change-log rows and an ``AccountChanged`` event
come with it). Until one is registered every action answers ``NoWriter``.

This module checks what is asked before anything reaches a provider: how many messages, that
each one exists in an account the caller may touch (``account_ids``), that folders and labels
belong to the message's account, and that the provider has the action (labels are Gmail's).
A provider failure is ``ActionFailed`` carrying the provider's error code; the cache then holds
what the provider answered for the messages done before the failure, and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from app.models import Account, Folder, Message
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.types import AccountId, Provider
from sync.providers.actions import ActionKind, MessageAction, UnsupportedAction
from sync.providers.errors import ProviderError

MAX_MESSAGES_PER_ACTION = 100


class ActionFailed(ServiceError):
    """The provider refused or failed; ``provider_code`` is its typed error's code."""

    code = "PROVIDER_ERROR"

    def __init__(self, message: str, *, provider_code: str) -> None:
        super().__init__(message)
        self.provider_code = provider_code


class NoWriter(ServiceError):
    """This server cannot write to providers (no writer registered)."""

    code = "PROVIDER_ERROR"


class MessageWriter(Protocol):
    """Performs actions at the provider and applies its answers to the cache (the sync side)."""

    async def act(
        self, account_id: AccountId, provider_ids: Sequence[str], action: MessageAction
    ) -> None:
        """Act on each message in turn; raises the first ``ProviderError`` (or
        ``UnsupportedAction``) after applying the answers received before it."""
        ...

    async def send(
        self, account_id: AccountId, raw: bytes, thread_provider_id: str | None
    ) -> str | None:
        """Send complete MIME from the account; the provider's id of the sent message when
        its answer names it (the cache is updated from that answer)."""
        ...


_writer: MessageWriter | None = None


def message_writer() -> MessageWriter | None:
    """The registered writer, if any."""
    return _writer


def register_message_writer(writer: MessageWriter | None) -> MessageWriter | None:
    """Install the process's writer (None removes it); returns the one it replaces."""
    global _writer
    previous, _writer = _writer, writer
    return previous


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """What the caller asked: cache ids of messages and, for moves and labels, of folders."""

    kind: ActionKind
    message_ids: Sequence[int]
    flag: bool = True
    folder_id: int | None = None
    add_label_ids: Sequence[int] = ()
    remove_label_ids: Sequence[int] = ()


async def act_on_messages(account_ids: Collection[int], request: ActionRequest) -> list[int]:
    """Perform ``request`` on messages of ``account_ids`` (the accounts the caller may touch);
    the ids of the messages acted on, in the order asked."""
    wanted = list(dict.fromkeys(request.message_ids))
    if not wanted:
        raise InvalidInput("name at least one message", field="ids")
    if len(wanted) > MAX_MESSAGES_PER_ACTION:
        raise InvalidInput(f"at most {MAX_MESSAGES_PER_ACTION} messages at once", field="ids")
    rows = await Message.filter(id__in=wanted, account_id__in=list(account_ids)).values(
        "id", "account_id", "provider_id"
    )
    by_id = {int(row["id"]): row for row in rows}
    if len(by_id) != len(wanted):
        raise NotFound("message not found")
    per_account: dict[int, list[str]] = defaultdict(list)
    for number in wanted:
        per_account[int(by_id[number]["account_id"])].append(str(by_id[number]["provider_id"]))
    providers = dict(await Account.filter(id__in=list(per_account)).values_list("id", "provider"))
    actions = {
        account_id: await _provider_action(account_id, Provider(providers[account_id]), request)
        for account_id in per_account
    }
    writer = _writer
    if writer is None:
        raise NoWriter("this server cannot act on mail at providers")
    for account_id, provider_ids in per_account.items():
        try:
            await writer.act(AccountId(account_id), provider_ids, actions[account_id])
        except UnsupportedAction as error:
            raise InvalidInput(str(error), field="ids") from None
        except ProviderError as error:
            raise ActionFailed(
                f"the provider refused the action ({error.code})", provider_code=error.code
            ) from None
    return wanted


async def _provider_action(
    account_id: int, provider: Provider, request: ActionRequest
) -> MessageAction:
    action = MessageAction(request.kind, flag=request.flag)
    if request.kind is ActionKind.CHANGE_LABELS:
        if provider is not Provider.GMAIL:
            raise InvalidInput("labels are only for Gmail accounts", field="labelIds")
        add = await _folder_provider_ids(account_id, request.add_label_ids, "labelIds")
        remove = await _folder_provider_ids(account_id, request.remove_label_ids, "labelIds")
        if not add and not remove:
            raise InvalidInput("name at least one label", field="labelIds")
        return replace(action, add=add, remove=remove)
    if request.kind is ActionKind.MOVE:
        if request.folder_id is None:
            raise InvalidInput("name the target folder", field="folderId")
        (folder,) = await _folder_provider_ids(account_id, [request.folder_id], "folderId")
        return replace(action, folder=folder)
    return action


async def _folder_provider_ids(
    account_id: int, folder_ids: Sequence[int], field: str
) -> tuple[str, ...]:
    wanted = list(dict.fromkeys(folder_ids))
    rows = dict(
        await Folder.filter(id__in=wanted, account_id=account_id).values_list("id", "provider_id")
    )
    if len(rows) != len(wanted):
        raise InvalidInput("folder not found in the message's account", field=field)
    return tuple(str(rows[number]) for number in wanted)
