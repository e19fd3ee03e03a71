"""Repeated operations hit the validation cache (keyed on the query text), limits and all.

Subscriptions are where it shows: a miss costs a validation per subscription (most of the
time of opening one) and leaves a freshly built rule class alive for its whole life. The cache
(``resolvers.compiled.validation``) keys on the query text rather than the parsed document, so
a hit hashes a string, not a syntax tree. That the limits still apply is pinned by
tests/app/server/test_bad_input.py; that an invalid query stays invalid on a hit, here.
"""

from __future__ import annotations

from app.settings import Settings
from resolvers.compiled.validation import validation_results
from tests.conftest import GraphQLCall
from tests.factories import make_owner

_RESULTS = validation_results(512)  # the cache TextValidationCache(512) in the schema uses


async def test_a_repeated_query_is_validated_once(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()
    # A mutation: a query accepted once is answered by the direct path, which validates nothing.
    query = 'mutation Again { updateProfile(name: "Again") { __typename } }'
    await gql(made.token, query)
    before = (_RESULTS.hits, _RESULTS.misses)
    for _ in range(3):
        assert "errors" not in await gql(made.token, query)
    assert (_RESULTS.hits - before[0], _RESULTS.misses - before[1]) == (3, 0)


async def test_a_different_text_is_validated_again(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()
    await gql(made.token, "query Once { currentToken { scopes } }")
    before = _RESULTS.misses
    # The same document in other words is another key: a text is never taken for another.
    assert "errors" not in await gql(made.token, "query  Once { currentToken { scopes } }")
    assert _RESULTS.misses - before == 1


async def test_an_invalid_query_keeps_its_errors_on_a_hit(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()
    query = "query Bad { currentToken { noSuchField } }"
    first = await gql(made.token, query)
    before = _RESULTS.hits
    second = await gql(made.token, query)
    assert _RESULTS.hits - before == 1
    assert second == first
    assert "noSuchField" in first["errors"][0]["message"]
