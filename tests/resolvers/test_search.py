"""Full-text search: subject, addresses, snippet and body words; kept current by triggers."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Message, MessageBody
from resolvers.search import fts5_query
from tests.conftest import GraphQLCall
from tests.factories import address, make_account, make_message, make_owner

SEARCH = """query($q: String!) { messages(filter: {search: $q}) { nodes { subject } } }"""


async def _found(gql: GraphQLCall, token: str, text: str) -> list[str]:
    body: dict[str, Any] = await gql(token, SEARCH, q=text)
    assert "errors" not in body, body
    return sorted(m["subject"] for m in body["data"]["messages"]["nodes"])


@pytest.fixture
async def mailbox(db: object) -> tuple[str, Message]:
    made = await make_owner()
    account = await make_account(made.owner)
    invoice = await make_message(
        account,
        subject="Quarterly invoice",
        from_addresses=[address("billing@acme.example", "Acme Billing")],
        body={"text_body": "Please pay the zebra crossing fee."},
    )
    await make_message(account, subject="Lunch", snippet="sandwiches at noon")
    return made.token, invoice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("invoice", ["Quarterly invoice"]),
        ("INVOICE quarterly", ["Quarterly invoice"]),
        ("zebra", ["Quarterly invoice"]),
        ("acme", ["Quarterly invoice"]),
        ("billing@acme.example", ["Quarterly invoice"]),
        ("sandwiches", ["Lunch"]),
        ("invoice sandwiches", []),
        ("zeb", []),
        ('"unbalanced AND OR NEAR( *', []),
        ("   ", ["Lunch", "Quarterly invoice"]),
    ],
)
async def test_search_matches_whole_words_of_every_part(
    gql: GraphQLCall, mailbox: tuple[str, Message], text: str, expected: list[str]
) -> None:
    token, _ = mailbox
    assert await _found(gql, token, text) == expected


async def test_index_follows_changes(gql: GraphQLCall, mailbox: tuple[str, Message]) -> None:
    token, invoice = mailbox
    invoice.subject = "Quarterly receipt"
    await invoice.save()
    assert await _found(gql, token, "invoice") == []
    assert await _found(gql, token, "receipt") == ["Quarterly receipt"]
    await MessageBody.filter(message_id=invoice.id).update(text_body="llama")
    assert await _found(gql, token, "zebra") == []
    assert await _found(gql, token, "llama") == ["Quarterly receipt"]
    await MessageBody.filter(message_id=invoice.id).delete()
    assert await _found(gql, token, "llama") == []
    await invoice.delete()
    assert await _found(gql, token, "receipt") == []


async def test_search_stays_within_tenancy(gql: GraphQLCall, mailbox: tuple[str, Message]) -> None:
    other = await make_owner()
    assert await _found(gql, other.token, "invoice") == []


def test_fts5_terms_are_quoted() -> None:
    assert fts5_query('say "hi" NEAR') == '"say" """hi""" "NEAR"'
