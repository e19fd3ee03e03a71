"""Plain async factories for test rows: ``make_owner()``, ``make_account(owner, **overrides)``,
``make_folder``, ``make_thread`` and ``make_message`` for the per-account cache."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app import clock
from app.models import (
    Account,
    Attachment,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    Owner,
    Thread,
)
from app.services.owners import create_owner
from app.services.tokens import issue_token
from app.types import ALL_ACTIONS, Action, FolderRole, OwnerId, Provider

_counter = itertools.count(1)


@dataclass
class OwnerWithToken:
    owner: Owner
    token: str


async def make_owner(**overrides: Any) -> OwnerWithToken:
    n = next(_counter)
    owner, issued = await create_owner(
        overrides.get("name", f"Owner {n}"), overrides.get("email", f"owner{n}@example.com")
    )
    return OwnerWithToken(owner, issued.raw)


async def make_account(owner: Owner, **overrides: Any) -> Account:
    n = next(_counter)
    fields: dict[str, Any] = {
        "owner_id": owner.id,
        "provider": Provider.GMAIL,
        "address": f"user{n}@example.com",
        "display_name": f"User {n}",
    }
    fields.update(overrides)
    return await Account.create(**fields)


async def make_token(
    owner: Owner,
    *,
    actions: frozenset[Action] | set[Action] = ALL_ACTIONS,
    account_ids: list[int] | None = None,
    **overrides: Any,
) -> str:
    issued = await issue_token(
        OwnerId(owner.id),
        name=overrides.pop("name", "test token"),
        actions=actions,
        account_ids=account_ids,
        **overrides,
    )
    return issued.raw


def address(email: str, name: str = "") -> dict[str, str]:
    """An address as the cache stores it."""
    return {"name": name, "email": email}


async def make_folder(account: Account, **overrides: Any) -> Folder:
    n = next(_counter)
    fields: dict[str, Any] = {
        "account_id": account.id,
        "provider_id": f"folder-{n}",
        "name": f"Folder {n}",
        "role": FolderRole.CUSTOM,
    }
    fields.update(overrides)
    return await Folder.create(**fields)


async def make_thread(account: Account, **overrides: Any) -> Thread:
    n = next(_counter)
    fields: dict[str, Any] = {
        "account_id": account.id,
        "provider_id": f"thread-{n}",
        "subject": f"Thread {n}",
        "last_message_at": clock.now(),
    }
    fields.update(overrides)
    return await Thread.create(**fields)


async def make_message(
    account: Account,
    *,
    folders: Sequence[Folder] = (),
    body: dict[str, Any] | None = None,
    attachments: Sequence[dict[str, Any]] = (),
    **overrides: Any,
) -> Message:
    """A cached message, filed in ``folders``, with an optional cached ``body`` (MessageBody
    fields) and attachment rows."""
    n = next(_counter)
    fields: dict[str, Any] = {
        "account_id": account.id,
        "provider_id": f"message-{n}",
        "subject": f"Message {n}",
        "from_addresses": [address(f"sender{n}@example.com", f"Sender {n}")],
        "to_addresses": [address(account.address)],
        "date": clock.now() - timedelta(minutes=n),
        "snippet": f"snippet {n}",
        "label_ids": [folder.provider_id for folder in folders],
        "has_attachments": bool(attachments),
    }
    fields.update(overrides)
    message = await Message.create(**fields)
    for folder in folders:
        await MessageLabel.create(message_id=message.id, folder_id=folder.id)
    if body is not None:
        await MessageBody.create(message_id=message.id, **body)
    for attachment in attachments:
        await Attachment.create(message_id=message.id, **attachment)
    return message
