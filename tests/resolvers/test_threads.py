"""Threads: latest activity first, their fields, messages and filters."""

from __future__ import annotations

from datetime import timedelta

from app import clock
from resolvers.ids import encode_id
from tests.conftest import GraphQLCall
from tests.factories import (
    address,
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
)


async def test_threads_newest_activity_first_with_their_messages(
    db: object, gql: GraphQLCall
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    now = clock.now()
    quiet = await make_thread(account, subject="quiet", last_message_at=now - timedelta(days=3))
    busy = await make_thread(
        account,
        subject="busy",
        snippet="latest words",
        participants=[address("ada@example.com", "Ada")],
        last_message_at=now,
        message_count=2,
        unread_count=1,
    )
    await make_thread(account, subject="no messages yet", last_message_at=None)
    await make_message(account, thread=busy, subject="second", date=now)
    await make_message(account, thread=busy, subject="first", date=now - timedelta(hours=1))
    await make_message(account, thread=quiet, subject="only", date=now - timedelta(days=3))
    body = await gql(
        made.token,
        """{ threads { nodes { id subject snippet participants { name address } lastMessageAt
             messageCount unreadCount messages { nodes { subject thread { subject } } } } } }""",
    )
    assert "errors" not in body, body
    first, second = body["data"]["threads"]["nodes"]
    assert first["id"] == encode_id("Thread", busy.id)
    assert first["participants"] == [{"name": "Ada", "address": "ada@example.com"}]
    assert (first["snippet"], first["messageCount"], first["unreadCount"]) == ("latest words", 2, 1)
    assert [m["subject"] for m in first["messages"]["nodes"]] == ["second", "first"]
    assert first["messages"]["nodes"][0]["thread"] == {"subject": "busy"}
    assert second["subject"] == "quiet"


async def test_thread_filters(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    first = await make_account(made.owner)
    second = await make_account(made.owner)
    folder = await make_folder(first)
    unread = await make_thread(first, subject="unread", unread_count=1)
    filed = await make_thread(first, subject="filed")
    await make_thread(second, subject="elsewhere")
    await make_message(first, thread=filed, folders=[folder], subject="needle in the haystack")
    await make_message(first, thread=unread)
    query = "query($f: ThreadFilter) { threads(filter: $f) { nodes { subject } } }"

    async def subjects(condition: dict[str, object]) -> list[str]:
        body = await gql(made.token, query, f=condition)
        assert "errors" not in body, body
        return sorted(t["subject"] for t in body["data"]["threads"]["nodes"])

    assert await subjects({"unread": True}) == ["unread"]
    assert await subjects({"unread": False}) == ["elsewhere", "filed"]
    assert await subjects({"folderId": encode_id("Folder", folder.id)}) == ["filed"]
    assert await subjects({"search": "needle"}) == ["filed"]
    assert await subjects({"accountId": encode_id("Account", second.id)}) == ["elsewhere"]


async def test_account_threads_edge(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    for n in range(3):
        await make_thread(
            account, subject=f"t{n}", last_message_at=clock.now() - timedelta(hours=n)
        )
    body = await gql(
        made.token,
        "query($id: ID!) { account(id: $id) { threads(first: 2) { nodes { subject } "
        "pageInfo { hasNextPage } totalCount } } }",
        id=encode_id("Account", account.id),
    )
    threads = body["data"]["account"]["threads"]
    assert [t["subject"] for t in threads["nodes"]] == ["t0", "t1"]
    assert threads["pageInfo"]["hasNextPage"] is True
    assert threads["totalCount"] == 3
