"""Bad input to /graphql gets a clear error with a code, never a 500 or a stack trace."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GraphQLCall, error_codes
from tests.factories import make_owner


@pytest.fixture
async def token(db: object) -> str:
    return (await make_owner()).token


def _assert_clean(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    assert "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_not_json(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post(
        "/graphql",
        content=b"{not json",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    _assert_clean(response, 400, "BAD_REQUEST")


async def test_wrong_content_type(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post(
        "/graphql",
        content=b"query { viewer { name } }",
        headers={"authorization": f"Bearer {token}", "content-type": "text/plain"},
    )
    _assert_clean(response, 400, "BAD_REQUEST")


async def test_missing_query(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post(
        "/graphql", json={"variables": {}}, headers={"authorization": f"Bearer {token}"}
    )
    _assert_clean(response, 400, "BAD_REQUEST")


async def test_huge_body(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ viewer { name } }", "pad": "x" * 400_000},
        headers={"authorization": f"Bearer {token}"},
    )
    _assert_clean(response, 413, "PAYLOAD_TOO_LARGE")


async def test_put_is_refused(http: httpx.AsyncClient, token: str) -> None:
    response = await http.put("/graphql", headers={"authorization": f"Bearer {token}"})
    _assert_clean(response, 405, "METHOD_NOT_ALLOWED")


async def test_query_in_get_url_is_not_executed(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get(
        "/graphql",
        params={"query": "{ viewer { name } }"},
        headers={"authorization": f"Bearer {token}", "accept": "application/json"},
    )
    assert response.status_code in (400, 405)
    assert "data" not in response.json()


async def test_token_in_query_string_is_refused(http: httpx.AsyncClient, token: str) -> None:
    response = await http.post(
        "/graphql", params={"access_token": token}, json={"query": "{ currentToken { scopes } }"}
    )
    _assert_clean(response, 400, "TOKEN_IN_QUERY_STRING")


async def test_unparsable_query(gql: GraphQLCall, token: str) -> None:
    body = await gql(token, "{ viewer { ")
    assert error_codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert body.get("data") is None


async def test_unknown_field(gql: GraphQLCall, token: str) -> None:
    body = await gql(token, "{ viewer { nme } }")
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_deep_query(gql: GraphQLCall, token: str) -> None:
    deep = "{ viewer " + "{ tokens " * 20 + "{ name }" + " }" * 20 + " }"
    body = await gql(token, deep)
    codes = error_codes(body)
    assert codes
    assert set(codes) <= {"QUERY_TOO_COMPLEX", "GRAPHQL_VALIDATION_FAILED"}
    assert "QUERY_TOO_COMPLEX" in codes
    assert body.get("data") is None


async def test_too_many_aliases(gql: GraphQLCall, token: str) -> None:
    query = "{ " + " ".join(f"a{i}: currentToken {{ scopes }}" for i in range(40)) + " }"
    body = await gql(token, query)
    assert "QUERY_TOO_COMPLEX" in error_codes(body)


async def test_too_many_tokens(gql: GraphQLCall, token: str) -> None:
    query = "{ currentToken { " + "scopes " * 4000 + "} }"
    body = await gql(token, query)
    assert "QUERY_TOO_COMPLEX" in error_codes(body)


async def test_health_checks(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}


async def test_a_bad_variable_is_not_echoed_back(gql: GraphQLCall, token: str) -> None:
    body = await gql(
        token,
        "mutation($name: String) { updateProfile(name: $name) { __typename } }",
        name={"password": "echo-canary-123"},
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "echo-canary-123" not in str(body)
