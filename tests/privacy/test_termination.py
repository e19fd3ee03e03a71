"""terminateOwner: tokens die at once, sync stops at once, every row goes after the grace period,
and nothing of another owner moves. Counted table by table, the search index included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tortoise import Tortoise

from app import clock
from app.events import InProcessBus, OwnerTerminated
from app.models import Account, Credential, ExportJob, SyncState
from app.services.export import archive_path
from app.services.purge import purge
from app.settings import Settings
from app.types import AccountId, AccountStatus, Action, SyncPhase
from sync.apply import AccountGone, apply_batch
from sync.jobs import lease_due_accounts, release_lease
from tests.conftest import GraphQLCall
from tests.connect.conftest import ConnectApp, ServedGoogle
from tests.connect.flows import connect_gmail_account, stored_access_token
from tests.factories import make_owner, make_token
from tests.privacy.rows import OWNER_TABLES, fill_owner, new_mail_batch, owner_rows

TERMINATE = """mutation($confirm: String!) { terminateOwner(confirm: $confirm) { __typename
  ... on OwnerTermination { terminatedAt purgeAfter tokensRevoked accountsStopped grantsRevoked }
  ... on MutationError { code field } } }"""


def test_every_table_is_counted(db: Settings) -> None:
    assert Tortoise.apps is not None
    tables = {model._meta.db_table for model in Tortoise.apps.get_models_iterable()}
    assert set(OWNER_TABLES) == tables | {"message_search"}


async def test_a_wrong_confirmation_terminates_nothing(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()

    body = await gql(made.token, TERMINATE, confirm="someone.else@example.com")

    assert body["data"]["terminateOwner"] == {
        "__typename": "MutationError",
        "code": "BAD_USER_INPUT",
        "field": "confirm",
    }
    assert (await gql(made.token, "{ viewer { email } }"))["_status"] == 200


async def test_termination_stops_everything_at_once_and_the_purge_erases_the_owner(
    db: Settings, gql: GraphQLCall, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim, bystander = await make_owner(), await make_owner()
    narrow = await make_token(victim.owner, actions={Action.ACCOUNTS_READ})
    accounts = await fill_owner(db, victim.owner)
    await fill_owner(db, bystander.owner)
    for account in accounts:  # a worker holds one of them right now
        await SyncState.filter(account_id=account.id).update(
            phase=SyncPhase.INCREMENTAL, lease_owner="worker-1", next_run_at=clock.now()
        )
    archive_ids = await ExportJob.filter(owner_id=victim.owner.id).values_list(
        "archive_id", flat=True
    )
    rows_before = await owner_rows(victim.owner.id)
    bystander_before = await owner_rows(bystander.owner.id)
    assert all(rows_before.values()), rows_before
    assert all(bystander_before.values()), bystander_before
    bus = InProcessBus()  # the app's own bus is LISTEN/NOTIFY on PostgreSQL, unstarted here
    monkeypatch.setattr(app.app.state.services, "events", bus)

    async with bus.subscribe() as events:
        body = await gql(victim.token, TERMINATE, confirm=victim.owner.email.upper())
        published = [events.get_nowait() for _ in range(events.qsize())]

    result = body["data"]["terminateOwner"]
    assert result["__typename"] == "OwnerTermination", body
    assert (result["tokensRevoked"], result["accountsStopped"]) == (2, 2)
    assert OwnerTerminated(owner_id=victim.owner.id) in published
    for token in (victim.token, narrow):
        assert (await gql(token, "{ currentToken { scopes } }"))["_status"] == 401
    assert (await gql(bystander.token, "{ viewer { email } }"))["_status"] == 200
    # Sync stopped: no account of the owner is due, and a batch already on its way writes nothing.
    stopped = await Account.filter(owner_id=victim.owner.id).values_list("status", flat=True)
    assert set(stopped) == {AccountStatus.DISABLED}
    states = await SyncState.filter(account_id__in=[a.id for a in accounts])
    assert {(s.phase, s.lease_owner) for s in states} == {(SyncPhase.STOPPED, None)}
    leased = await lease_due_accounts("privacy-test", limit=10_000, lease_seconds=60)
    for account_id in leased:
        await release_lease("privacy-test", account_id)
    assert not {a.id for a in accounts} & set(leased)
    with pytest.raises(AccountGone):
        await apply_batch(
            accounts[0].id, new_mail_batch(), events=InProcessBus(), lease_owner="worker-1"
        )
    # Secrets and exports go at once; the cache waits for the purge.
    assert await Credential.filter(account__owner_id=victim.owner.id).count() == 0
    assert await ExportJob.filter(owner_id=victim.owner.id).count() == 0
    assert not any(archive_path(db, str(a)).exists() for a in archive_ids)
    at_once = {**rows_before, "credentials": 0, "export_jobs": 0, "oauth_states": 0}
    assert await owner_rows(victim.owner.id) == at_once

    clock.travel(timedelta(days=db.termination_grace_days - 1))
    await purge(db)
    assert await owner_rows(victim.owner.id) == at_once

    clock.travel(timedelta(days=2))
    report = await purge(db)

    assert report.sections["terminated_owners"]["owners"] >= 1
    assert set((await owner_rows(victim.owner.id)).values()) == {0}
    assert await owner_rows(bystander.owner.id) == bystander_before


async def test_termination_revokes_the_google_grant_and_deletes_the_credentials(
    connect_app: ConnectApp, google: ServedGoogle
) -> None:
    made = await make_owner()
    account = await connect_gmail_account(connect_app, google, made.token)
    access_token = await stored_access_token(AccountId(account.id))
    assert google.emulator.identity.authenticate(access_token) is not None

    body = await connect_app.gql(made.token, TERMINATE, confirm=made.owner.email)

    assert body["data"]["terminateOwner"]["grantsRevoked"] == 1
    assert google.emulator.identity.authenticate(access_token) is None
    assert not await Credential.filter(account_id=account.id).exists()
    assert (await Account.get(id=account.id)).status == AccountStatus.DISABLED
