"""Repeated operations hit Strawberry's validation cache, limits and all.

Subscriptions are where it shows: a miss costs a validation per subscription (most of the
time of opening one) and leaves a freshly built rule class alive for its whole life. That the
limits still apply is pinned by tests/app/server/test_bad_input.py.
"""

from __future__ import annotations

from strawberry.extensions.validation_cache import _get_validate_cache

from app.settings import Settings
from tests.conftest import GraphQLCall
from tests.factories import make_owner


async def test_a_repeated_query_is_validated_once(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()
    query = "query Again { currentToken { scopes } }"
    validate = _get_validate_cache(512)  # the module-level cache ValidationCache(512) uses
    await gql(made.token, query)
    before = validate.cache_info()
    for _ in range(3):
        assert "errors" not in await gql(made.token, query)
    after = validate.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)
