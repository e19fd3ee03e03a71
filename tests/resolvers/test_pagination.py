"""Keyset pagination: both directions, stable cursors, limits, counts, and the index it uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from app import clock
from app.settings import Settings
from resolvers.filters import MessageCriteria
from resolvers.lists import Branch, union_sql
from resolvers.pagination import PageRequest, decode_cursor, encode_cursor
from resolvers.rows import MESSAGES
from resolvers.sql import Statement, connection, dialect
from tests.conftest import GraphQLCall, error_codes
from tests.factories import make_account, make_message, make_owner, make_thread

PAGE = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: MessageFilter) {
  messages(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    edges { cursor node { subject } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def _seeded(count: int, *, same_date: bool = False) -> tuple[str, list[str]]:
    """A token and the subjects of its ``count`` messages, newest first."""
    made = await make_owner()
    account = await make_account(made.owner)
    now = clock.now()
    for n in range(count):
        date = now if same_date else now - timedelta(hours=n)
        await make_message(account, subject=f"m{n:02}", date=date)
    subjects = [f"m{n:02}" for n in range(count)]
    return made.token, list(reversed(subjects)) if same_date else subjects


def _page(body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    assert "errors" not in body, body
    connection = body["data"]["messages"]
    return [edge["node"]["subject"] for edge in connection["edges"]], connection["pageInfo"]


@pytest.mark.parametrize("same_date", [False, True], ids=["dates", "ties"])
async def test_forward_pages_cover_the_list_once(
    db: object, gql: GraphQLCall, same_date: bool
) -> None:
    token, expected = await _seeded(7, same_date=same_date)
    seen: list[str] = []
    after = None
    while True:
        subjects, info = _page(await gql(token, PAGE, first=3, after=after))
        seen += subjects
        assert info["hasPreviousPage"] is (after is not None)
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == expected


async def test_backward_pages_cover_the_list_once(db: object, gql: GraphQLCall) -> None:
    token, expected = await _seeded(7)
    pages: list[list[str]] = []
    before = None
    while True:
        subjects, info = _page(await gql(token, PAGE, last=3, before=before))
        pages.insert(0, subjects)
        assert info["hasNextPage"] is (before is not None)
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]
    assert [s for page in pages for s in page] == expected
    assert pages[-1] == expected[-3:]


async def test_cursors_survive_new_mail(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    now = clock.now()
    for n in range(4):
        await make_message(account, subject=f"m{n}", date=now - timedelta(hours=n))
    first, info = _page(await gql(made.token, PAGE, first=2))
    await make_message(account, subject="newer", date=now + timedelta(hours=1))
    second, _ = _page(await gql(made.token, PAGE, first=2, after=info["endCursor"]))
    assert first + second == ["m0", "m1", "m2", "m3"]


async def test_between_two_cursors(db: object, gql: GraphQLCall) -> None:
    token, expected = await _seeded(6)
    edges = (await gql(token, PAGE, first=6))["data"]["messages"]["edges"]
    after, before = edges[0]["cursor"], edges[4]["cursor"]
    subjects, _ = _page(await gql(token, PAGE, first=10, after=after, before=before))
    assert subjects == expected[1:4]


async def test_default_and_maximum_page_size(db: Settings, gql: GraphQLCall) -> None:
    token, expected = await _seeded(db.default_page_size + 2)
    subjects, info = _page(await gql(token, PAGE))
    assert subjects == expected[: db.default_page_size]
    assert info["hasNextPage"] is True
    for arguments in (
        {"first": db.max_page_size + 1},
        {"last": db.max_page_size + 1},
        {"first": -1},
        {"first": 1, "last": 1},
        {"after": "garbage"},
        {"before": encode_cursor("t", (clock.now(), 1))},
    ):
        body = await gql(token, PAGE, **arguments)
        assert error_codes(body) == ["BAD_USER_INPUT"], (arguments, body)
        assert body["data"] is None


async def test_total_count_is_computed_on_request(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    for n in range(5):
        await make_message(account, unread=n % 2 == 0)
    body = await gql(
        made.token,
        "{ all: messages(first: 1) { totalCount } unread: messages(first: 1, "
        "filter: {unread: true}) { totalCount nodes { unread } } }",
    )
    assert body["data"]["all"]["totalCount"] == 5
    assert body["data"]["unread"]["totalCount"] == 3


async def test_thread_messages_page_too(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    thread = await make_thread(account)
    now = clock.now()
    for n in range(5):
        await make_message(account, thread=thread, subject=f"t{n}", date=now - timedelta(hours=n))
    query = """query($after: String) { threads { nodes { messages(first: 2, after: $after) {
      nodes { subject } pageInfo { endCursor hasNextPage } totalCount } } } }"""
    seen: list[str] = []
    after = None
    while True:
        body = await gql(made.token, query, after=after)
        assert "errors" not in body, body
        connection = body["data"]["threads"]["nodes"][0]["messages"]
        assert connection["totalCount"] == 5
        seen += [m["subject"] for m in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == ["t0", "t1", "t2", "t3", "t4"]


def test_cursor_round_trip() -> None:
    key = (clock.now(), 123)
    assert decode_cursor("m", encode_cursor("m", key), "after") == key


async def _plan(sql: Statement, text: str) -> str:
    if sql.postgres:
        async with in_transaction() as transaction:
            # Test tables are tiny: forbid the sequential scan to see which index serves.
            await transaction.execute_query("SET LOCAL enable_seqscan = off")
            _, rows = await transaction.execute_query("EXPLAIN " + text, sql.params)
        return "\n".join(row[0] for row in rows)
    _, rows = await connection().execute_query("EXPLAIN QUERY PLAN " + text, sql.params)
    return "\n".join(row[3] for row in rows)


async def _index_named(columns: str) -> str:
    sql = Statement(dialect())
    if sql.postgres:
        catalog = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages'"
    else:
        catalog = (
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
        )
    for name, definition in await sql.rows(catalog):
        if definition and columns in definition.replace('"', ""):
            return str(name)
    raise AssertionError(f"no index on {columns}")


async def test_keyset_condition_uses_the_account_date_id_index(db: object) -> None:
    """The deep-page statement walks (account_id, date, id): no sort, no scan."""
    index = await _index_named("account_id, date, id")
    sql = Statement(dialect())
    page = PageRequest(limit=50, after=(clock.now(), 10_000))
    account: Branch = Branch(1, lambda s: f"m.account_id = {s(1)}")
    text = union_sql(sql, MESSAGES, [account], MessageCriteria(unread=True).where, page)
    plan = await _plan(sql, text)
    assert index in plan, plan
    assert "(m.date, m.id) < (" in text
    assert "OFFSET" not in text.upper()
    if sql.postgres:
        assert "Sort" not in plan, plan
    else:
        assert "TEMP B-TREE" not in plan, plan
