"""Every API request is logged (time, token, operation, status), never its variables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app import clock
from app.models import ApiToken, UsageLogEntry
from app.services.usage_log import UsageRecord, purge_expired_usage_logs
from tests.conftest import GraphQLCall
from tests.factories import make_owner


async def _flush(app: Any) -> None:
    await app.app.state.usage_writer.flush()


async def test_requests_are_logged_without_variables(
    db: object, app: Any, gql: GraphQLCall
) -> None:
    made = await make_owner()
    await gql(made.token, "query Mine { viewer { name } }")
    await gql(
        made.token,
        "mutation Profile($name: String) { updateProfile(name: $name) { __typename } }",
        name="secret-variable-canary",
    )
    await gql(made.token, "query Broken { viewer { nme } }")
    await _flush(app)
    rows = await UsageLogEntry.filter(owner_id=made.owner.id).order_by("id")
    assert [(r.operation_name, r.operation_type, r.status) for r in rows] == [
        ("Mine", "query", "ok"),
        ("Profile", "mutation", "ok"),
        ("Broken", "query", "error"),
    ]
    assert rows[2].error_codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert all(r.duration_ms >= 0 for r in rows)
    assert "secret-variable-canary" not in repr(await UsageLogEntry.all().values())
    token = await ApiToken.get(owner_id=made.owner.id)
    assert token.last_used_at is not None


async def test_usage_is_readable_by_its_owner_only(db: object, app: Any, gql: GraphQLCall) -> None:
    first, second = await make_owner(), await make_owner()
    await gql(first.token, "query FirstOwner { viewer { name } }")
    await _flush(app)
    body = await gql(second.token, "{ viewer { usage { operationName } } }")
    names = [u["operationName"] for u in body["data"]["viewer"]["usage"]]
    assert "FirstOwner" not in names


async def test_rows_older_than_retention_are_purged(db: object, app: Any) -> None:
    made = await make_owner()
    writer = app.app.state.usage_writer
    now = clock.now()
    for age in (89, 91):
        writer.record(
            UsageRecord(
                made.owner.id, None, now - timedelta(days=age), f"age{age}", "query", "ok", (), 1.0
            )
        )
    await writer.flush()
    await purge_expired_usage_logs(90)
    names = {r.operation_name for r in await UsageLogEntry.filter(owner_id=made.owner.id)}
    assert names == {"age89"}
