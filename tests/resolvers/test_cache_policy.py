"""setCachePolicy: partial updates, validation, and its answer."""

from __future__ import annotations

from app.models import Account
from app.types import Action
from resolvers.ids import encode_id
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_owner, make_token

SET = """
mutation($id: ID!, $days: Int, $bodies: Boolean, $fetch: Boolean) {
  setCachePolicy(accountId: $id, retentionDays: $days, cacheBodies: $bodies,
                 fetchUncachedBodies: $fetch) {
    ... on CachePolicyUpdated {
      account { cachePolicy { retentionDays cacheBodies fetchUncachedBodies } }
    }
    ... on MutationError { code field }
  }
}
"""
PARTIAL = """
mutation($id: ID!) { setCachePolicy(accountId: $id, cacheBodies: false) {
  ... on CachePolicyUpdated { account { cachePolicy { retentionDays cacheBodies } } } } }
"""


async def test_set_then_change_one_setting(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    token = await make_token(made.owner, actions={Action.ACCOUNTS_MANAGE})
    gid = encode_id("Account", account.id)
    body = await gql(token, SET, id=gid, days=30, bodies=True, fetch=False)
    assert body["data"]["setCachePolicy"]["account"]["cachePolicy"] == {
        "retentionDays": 30,
        "cacheBodies": True,
        "fetchUncachedBodies": False,
    }
    body = await gql(token, PARTIAL, id=gid)
    assert body["data"]["setCachePolicy"]["account"]["cachePolicy"] == {
        "retentionDays": 30,
        "cacheBodies": False,
    }
    stored = await Account.get(id=account.id)
    assert (stored.retention_days, stored.cache_bodies, stored.fetch_uncached_bodies) == (
        30,
        False,
        False,
    )
    await gql(token, SET, id=gid, days=None)
    assert (await Account.get(id=account.id)).retention_days is None


async def test_retention_is_validated(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner, retention_days=7)
    for days in (0, -1, 100_000):
        body = await gql(made.token, SET, id=encode_id("Account", account.id), days=days)
        assert body["data"]["setCachePolicy"] == {
            "code": "BAD_USER_INPUT",
            "field": "retentionDays",
        }
    assert (await Account.get(id=account.id)).retention_days == 7
