"""Erasing one mailbox (disconnectAccount) leaves nothing of it, the search index and change log
included, and a sync that was already running cannot bring any of it back."""

from __future__ import annotations

import asyncio

import pytest

from app.auth.principal import Principal
from app.events import InProcessBus
from app.models import SyncState
from app.services.disconnect import disconnect_account
from app.settings import Settings
from app.types import ALL_ACTIONS, OwnerId, TokenId
from sync.apply import AccountGone, apply_batch
from tests.factories import make_account, make_owner
from tests.privacy.rows import account_rows, fill_account, new_mail_batch, search_entries


def owner_principal(owner_id: int) -> Principal:
    return Principal(OwnerId(owner_id), TokenId(0), ALL_ACTIONS, None)


async def test_disconnect_erases_the_search_index_and_change_log(db: Settings) -> None:
    made = await make_owner()
    gone, kept = await make_account(made.owner), await make_account(made.owner)
    gone_ids = [m.id for m in await fill_account(gone, subject="erase me")]
    kept_ids = [m.id for m in await fill_account(kept)]
    kept_before = await account_rows(kept.id)
    assert await search_entries(gone_ids) == set(gone_ids)

    await disconnect_account(db, owner_principal(made.owner.id), gone.id)

    assert set((await account_rows(gone.id)).values()) == {0}
    assert await search_entries(gone_ids) == set()
    assert await search_entries(kept_ids) == set(kept_ids)
    assert await account_rows(kept.id) == kept_before


async def test_a_batch_for_an_erased_account_writes_nothing(db: Settings) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    await SyncState.create(account_id=account.id, lease_owner="worker-1")
    await disconnect_account(db, owner_principal(made.owner.id), account.id)

    with pytest.raises(AccountGone):
        await apply_batch(account.id, new_mail_batch(), events=InProcessBus())
    with pytest.raises(AccountGone):
        await apply_batch(
            account.id, new_mail_batch(), events=InProcessBus(), lease_owner="worker-1"
        )

    assert set((await account_rows(account.id)).values()) == {0}


async def test_a_batch_racing_the_erasure_leaves_nothing_either_way(db: Settings) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    await fill_account(account)
    await SyncState.filter(account_id=account.id).update(lease_owner="worker-1")

    results = await asyncio.gather(
        apply_batch(account.id, new_mail_batch(), events=InProcessBus(), lease_owner="worker-1"),
        disconnect_account(db, owner_principal(made.owner.id), account.id),
        return_exceptions=True,
    )

    # The batch either committed first (and was erased with the rest) or found the account gone.
    assert not isinstance(results[1], BaseException), results
    assert not isinstance(results[0], BaseException) or isinstance(results[0], AccountGone)
    assert set((await account_rows(account.id)).values()) == {0}
