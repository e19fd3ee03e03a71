"""disconnectAccount: the grant revoked at Google, that account's rows erased, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from app.models import (
    Account,
    Attachment,
    ChangeLogEntry,
    Credential,
    Folder,
    Message,
    MessageBody,
    MessageLabel,
    SyncState,
    Thread,
)
from app.types import AccountId, FolderRole
from emulators.graph_testing import ServedEmulator
from resolvers.ids import encode_id
from tests.connect.conftest import ConnectApp, ServedGoogle
from tests.connect.flows import (
    DISCONNECT,
    connect_gmail_account,
    connect_microsoft_account,
    start,
    stored_access_token,
)
from tests.factories import make_account, make_owner, make_token

CACHE = (Folder, Thread, Message, MessageBody, MessageLabel, Attachment, ChangeLogEntry)


async def fill_cache(account: Account) -> None:
    """One of everything the cache holds for an account."""
    folder = await Folder.create(
        account=account, provider_id="INBOX", name="Inbox", role=FolderRole.INBOX
    )
    thread = await Thread.create(account=account, provider_id="t1", subject="Hello")
    message = await Message.create(
        account=account, thread=thread, provider_id="m1", subject="Hello", date=datetime.now(UTC)
    )
    await MessageBody.create(message=message, text_body="secret plans")
    await MessageLabel.create(message=message, folder=folder)
    await Attachment.create(message=message, filename="plans.pdf")
    await ChangeLogEntry.create(account=account, kind="message_added", message_id=message.id)
    await SyncState.get_or_create(account_id=account.id)


async def counts(account_id: int) -> dict[str, int]:
    by_account = {
        model.__name__: await model.filter(account_id=account_id).count()
        for model in (Folder, Thread, Message, ChangeLogEntry, Credential, SyncState)
    }
    messages = Message.filter(account_id=account_id).values_list("id", flat=True)
    for model in (MessageBody, MessageLabel, Attachment):
        by_account[model.__name__] = await model.filter(message_id__in=await messages).count()
    return by_account


async def test_disconnecting_gmail_revokes_the_grant_and_erases_only_that_account(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    gone = await connect_gmail_account(connect_app, google, made.token)
    kept = await connect_gmail_account(connect_app, google, made.token)
    for account in (gone, kept):
        await fill_cache(account)
    access_token = await stored_access_token(AccountId(gone.id))
    assert google.emulator.identity.authenticate(access_token) is not None
    before = await counts(kept.id)

    body = await connect_app.gql(made.token, DISCONNECT, id=encode_id("Account", gone.id))

    assert body["data"]["disconnectAccount"] == {
        "__typename": "AccountDisconnected",
        "id": encode_id("Account", gone.id),
        "revokedAtProvider": True,
    }
    assert google.emulator.identity.authenticate(access_token) is None  # the grant is gone
    assert not await Account.exists(id=gone.id)
    assert set((await counts(gone.id)).values()) == {0}
    assert await counts(kept.id) == before
    assert all(before.values())
    assert await Account.exists(id=kept.id)


async def test_disconnecting_microsoft_erases_without_a_revocation(
    connect_app: ConnectApp, microsoft: ServedEmulator
) -> None:
    made = await make_owner()
    account = await connect_microsoft_account(connect_app, microsoft, made.token)
    await fill_cache(account)

    body = await connect_app.gql(made.token, DISCONNECT, id=encode_id("Account", account.id))

    assert body["data"]["disconnectAccount"]["revokedAtProvider"] is False
    assert not await Account.exists(id=account.id)
    assert set((await counts(account.id)).values()) == {0}


async def test_another_owners_account_is_not_found(connect_app: ConnectApp) -> None:
    mine, theirs = await make_owner(), await make_owner()
    their_account = await make_account(theirs.owner)
    await fill_cache(their_account)
    before = await counts(their_account.id)

    result = await start(
        connect_app, mine.token, DISCONNECT, id=encode_id("Account", their_account.id)
    )
    unknown = await start(connect_app, mine.token, DISCONNECT, id=encode_id("Account", 10**12))

    assert (
        result
        == unknown
        == {
            "__typename": "MutationError",
            "code": "NOT_FOUND",
            "message": "account not found",
        }
    )
    assert await Account.exists(id=their_account.id)
    assert await counts(their_account.id) == before


async def test_a_token_limited_to_other_accounts_cannot_disconnect(
    connect_app: ConnectApp,
) -> None:
    made = await make_owner()
    first, second = await make_account(made.owner), await make_account(made.owner)
    only_first = await make_token(made.owner, account_ids=[first.id])

    result = await start(connect_app, only_first, DISCONNECT, id=encode_id("Account", second.id))

    assert result["code"] == "NOT_FOUND"
    assert await Account.exists(id=second.id)
