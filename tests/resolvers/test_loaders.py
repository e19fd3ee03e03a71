"""No N+1: a deeply nested query costs the same number of statements for 2 items or 8."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from resolvers.sql import connection
from tests.conftest import GraphQLCall
from tests.factories import (
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
)

NESTED = """
{
  accounts {
    address
    folders { name }
    threads(first: 10) {
      nodes {
        subject
        account { address }
        messages(first: 3) { totalCount nodes { subject labels { name } } }
      }
    }
    messages(first: 10) {
      nodes {
        subject
        labels { name role parent { name } }
        thread { subject messages(first: 2) { nodes { subject } } }
        account { address }
        textBody
        htmlBody
        attachments { filename downloadUrl }
        headers { name }
      }
    }
  }
}
"""


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """Record every statement sent on the default connection (raw SQL and the ORM)."""
    client = type(connection())
    seen: list[str] = []
    originals = {name: getattr(client, name) for name in ("execute_query", "execute_query_dict")}

    def spy(name: str) -> Any:
        original = originals[name]

        async def wrapper(self: Any, query: str, values: Any = None) -> Any:
            seen.append(query)
            return await original(self, query, values)

        return wrapper

    for name in originals:
        setattr(client, name, spy(name))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(client, name, original)


async def _owner_with(items: int) -> str:
    made = await make_owner()
    for _ in range(2):
        account = await make_account(made.owner)
        parent = await make_folder(account)
        folder = await make_folder(account, parent_provider_id=parent.provider_id)
        for n in range(items):
            thread = await make_thread(account)
            for _ in range(2):
                await make_message(
                    account,
                    thread=thread,
                    folders=[folder, parent],
                    body={"text_body": "t", "html_body": "<p>h</p>", "headers": [["A", "b"]]},
                    attachments=[{"filename": f"{n}.txt", "content_type": "text/plain"}],
                )
    return made.token


@pytest.fixture
async def tokens(db: object) -> tuple[str, str]:
    return await _owner_with(2), await _owner_with(8)


async def test_statement_count_does_not_grow_with_items(
    gql: GraphQLCall, tokens: tuple[str, str]
) -> None:
    counts = []
    for token in tokens:
        await gql(token, "{ currentToken { scopes } }")  # authenticate outside the count
        with counted_statements() as seen:
            body = await gql(token, NESTED)
        assert "errors" not in body, body
        counts.append(len(seen))
    small, large = counts
    assert small == large, counts
    assert large <= 16, counts
