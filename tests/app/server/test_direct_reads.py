"""app.server.direct_reads: a query text the schema accepted before is answered from its plan
without Strawberry's pipeline, recorded in the usage log and the metrics as the pipeline
records it; everything else is left to the pipeline, whose answer it then is."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from app.models import UsageLogEntry
from app.types import Action
from resolvers.compiled.paths import ExecutionPaths
from resolvers.ids import encode_id
from tests.factories import make_account, make_message, make_owner, make_token

LATEST = """query DirectLatest($account: ID!) {
  messages(first: 5, filter: {accountId: $account}) { nodes { id subject unread date } }
}"""


def paths(app: Any) -> ExecutionPaths:
    paths: ExecutionPaths = app.app.state.services.execution_paths
    return paths


async def post(http: httpx.AsyncClient, token: str | None, body: object) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await http.post("/graphql", content=orjson.dumps(body), headers=headers)


async def mailbox() -> tuple[str, dict[str, str], int]:
    made = await make_owner()
    account = await make_account(made.owner)
    for n in range(3):
        await make_message(account, subject=f"Direct {n}")
    return made.token, {"account": encode_id("Account", account.id)}, made.owner.id


async def test_the_second_request_of_a_text_is_answered_directly_and_alike(
    db: object, app: Any, http: httpx.AsyncClient
) -> None:
    token, variables, owner_id = await mailbox()
    body = {"query": LATEST, "variables": variables}
    before = paths(app).direct
    first = await post(http, token, body)
    assert paths(app).direct == before  # the pipeline parsed and validated it
    second = await post(http, token, body)
    assert paths(app).direct == before + 1
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert second.headers["content-type"] == first.headers["content-type"]
    assert len(orjson.loads(second.content)["data"]["messages"]["nodes"]) == 3

    await app.app.state.usage_writer.flush()
    rows = await UsageLogEntry.filter(owner_id=owner_id).order_by("id")
    assert [(r.operation_name, r.operation_type, r.status, r.error_codes) for r in rows] == [
        ("DirectLatest", "query", "ok", []),
        ("DirectLatest", "query", "ok", []),
    ]
    metrics = (await http.get("/metrics")).text
    ok = 'inbox_api_graphql_operations_total{operation="DirectLatest",status="ok",type="query"}'
    assert f"{ok} 2.0" in metrics
    assert (
        'inbox_api_graphql_operation_seconds_count{operation="DirectLatest",type="query"} 2.0'
        in (metrics)
    )


async def test_what_it_does_not_answer_goes_through_the_pipeline(
    db: object, app: Any, http: httpx.AsyncClient
) -> None:
    token, variables, _ = await mailbox()
    body = {"query": LATEST, "variables": variables}
    assert (await post(http, token, body)).status_code == 200  # accepted once
    metadata_only = await make_token(
        (await make_owner()).owner, actions=frozenset({Action.ACCOUNTS_READ})
    )
    before = paths(app).direct
    answers = [
        await post(http, "iapi_not-a-token", body),  # the pipeline's 401
        await post(http, token, {**body, "extensions": {"x": 1}}),
        await post(http, token, [body]),  # a batch
        await post(http, token, {"query": LATEST, "variables": {"account": ["x"]}}),  # no ID
        await post(http, token, {"query": LATEST, "variables": {}}),  # a required one missing
        await post(http, metadata_only, body),  # lacks a scope the plan checks
        await post(http, token, {**body, "operationName": "Other"}),  # no such operation
    ]
    assert paths(app).direct == before
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 401
    codes = [
        error.get("extensions", {}).get("code")
        for answer in answers[3:]
        for error in orjson.loads(answer.content).get("errors", [])
    ]
    assert {"FORBIDDEN", "BAD_USER_INPUT"} <= set(codes), codes


async def test_a_mutation_accepted_before_is_never_answered_directly(
    db: object, app: Any, http: httpx.AsyncClient
) -> None:
    made = await make_owner()
    mutation = {"query": 'mutation M { updateProfile(name: "Ada") { __typename } }'}
    before = paths(app).direct
    for _ in range(2):
        assert (await post(http, made.token, mutation)).status_code == 200
    assert paths(app).direct == before
