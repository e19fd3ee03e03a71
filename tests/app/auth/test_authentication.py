"""Missing, malformed, unknown, expired and revoked tokens all get the same 401 answer."""

from __future__ import annotations

from datetime import timedelta

from app import clock
from app.auth.tokens import generate_token
from app.models import ApiToken
from tests.conftest import GraphQLCall
from tests.factories import make_owner, make_token

QUERY = "{ currentToken { scopes } }"


def _stripped(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if k != "_status"}


async def _reference_401(gql: GraphQLCall) -> dict[str, object]:
    body = await gql(None, QUERY)
    assert body["_status"] == 401
    return _stripped(body)


async def test_every_bad_token_gets_the_same_answer(db: object, gql: GraphQLCall) -> None:
    reference = await _reference_401(gql)
    made = await make_owner()
    expiring = await make_token(made.owner, expires_at=clock.now() + timedelta(hours=1))
    revoked = await make_token(made.owner, name="to revoke")
    await ApiToken.filter(owner_id=made.owner.id, name="to revoke").update(revoked_at=clock.now())

    clock.travel(timedelta(hours=2))
    bad_tokens = ["", "not-a-token", "iapi_short", generate_token(), expiring, revoked]
    for token in bad_tokens:
        body = await gql(token or None, QUERY)
        assert body["_status"] == 401, token
        assert _stripped(body) == reference


async def test_a_valid_token_works_until_revoked(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    body = await gql(made.token, QUERY)
    assert body["_status"] == 200
    assert "OWNER" in body["data"]["currentToken"]["scopes"]

    tokens = await gql(made.token, "{ viewer { tokens { id name } } }")
    [own] = tokens["data"]["viewer"]["tokens"]
    revoked = await gql(
        made.token, "mutation($id: ID!) { revokeToken(id: $id) { __typename } }", id=own["id"]
    )
    assert revoked["data"]["revokeToken"]["__typename"] == "TokenRevokedPayload"
    assert (await gql(made.token, QUERY))["_status"] == 401
