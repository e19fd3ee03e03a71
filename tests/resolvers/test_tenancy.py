"""Another owner's objects, and accounts outside a token, look exactly like missing ones.

Every path is tried: root lists and lookups, ``node(id:)``, nested edges, filters naming
foreign ids, aliases, and the cache policy mutation. Each answer is compared with the answer
for an id that does not exist at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from app.models import Account, Folder, Message, Thread
from resolvers.ids import encode_id
from tests.conftest import GraphQLCall
from tests.factories import (
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
    make_token,
)

MISSING = 9_999_999_999


@dataclass
class Mailbox:
    account: Account
    folder: Folder
    thread: Thread
    message: Message


async def _mailbox(owner: Any, subject: str) -> Mailbox:
    account = await make_account(owner)
    folder = await make_folder(account)
    thread = await make_thread(account)
    message = await make_message(
        account, subject=subject, folders=[folder], thread=thread, body={"text_body": subject}
    )
    return Mailbox(account, folder, thread, message)


@dataclass
class World:
    token: str  # all of owner A's accounts
    limited: str  # owner A, account "mine" only
    mine: Mailbox
    sibling: Mailbox  # owner A, outside the limited token
    foreign: Mailbox  # owner B


@pytest.fixture
async def world(db: object) -> World:
    a = await make_owner()
    b = await make_owner()
    mine = await _mailbox(a.owner, "mine")
    sibling = await _mailbox(a.owner, "sibling")
    foreign = await _mailbox(b.owner, "foreign")
    limited = await make_token(a.owner, account_ids=[mine.account.id])
    return World(a.token, limited, mine, sibling, foreign)


def _ids(box: Mailbox | None) -> dict[str, str]:
    def gid(kind: str, row: Any) -> str:
        return encode_id(kind, MISSING if row is None else row.id)

    return {
        "account": gid("Account", box and box.account),
        "folder": gid("Folder", box and box.folder),
        "thread": gid("Thread", box and box.thread),
        "message": gid("Message", box and box.message),
    }


LOOKUPS = {
    "message": "query($message: ID!) { message(id: $message) { subject textBody } }",
    "thread": "query($thread: ID!) { thread(id: $thread) { subject messages { nodes { id } } } }",
    "folder": "query($folder: ID!) { folder(id: $folder) { name messages { nodes { id } } } }",
    "account": "query($account: ID!) { account(id: $account) { messages { nodes { id } } } }",
    "node": "query($message: ID!) { node(id: $message) { id ... on Message { subject } } }",
    "node thread": "query($thread: ID!) { node(id: $thread) { id } }",
    "node folder": "query($folder: ID!) { node(id: $folder) { id } }",
    "node account": "query($account: ID!) { node(id: $account) { id } }",
    "filter account": "query($account: ID!) { messages(filter: {accountId: $account}) "
    "{ nodes { id } totalCount } }",
    "filter folder": "query($folder: ID!) { messages(filter: {folderId: $folder}) "
    "{ nodes { id } totalCount } }",
    "filter thread": "query($thread: ID!) { messages(filter: {threadId: $thread}) "
    "{ nodes { id } totalCount } }",
    "thread filter": "query($account: ID!) { threads(filter: {accountId: $account}) "
    "{ nodes { id } } }",
    "folders of": "query($account: ID!) { folders(accountId: $account) { id } }",
    "aliases": "query($message: ID!, $thread: ID!) { a: message(id: $message) { id } "
    "b: thread(id: $thread) { id } c: node(id: $message) { id } }",
    "cache policy": "mutation($account: ID!) { setCachePolicy(accountId: $account, "
    "cacheBodies: false) { ... on MutationError { code message } "
    "... on CachePolicyUpdated { account { id } } } }",
}


def _only(query: str, ids: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in ids.items() if f"${name}:" in query}


@pytest.mark.parametrize("query", LOOKUPS.values(), ids=LOOKUPS.keys())
@pytest.mark.parametrize("who", ["other owner", "outside the token"])
async def test_foreign_looks_missing(gql: GraphQLCall, world: World, query: str, who: str) -> None:
    token, target = (
        (world.token, world.foreign) if who == "other owner" else (world.limited, world.sibling)
    )
    foreign = await gql(token, query, **_only(query, _ids(target)))
    missing = await gql(token, query, **_only(query, _ids(None)))
    assert foreign == missing
    assert target.message.subject not in str(foreign)


async def test_lists_hold_only_readable_accounts(gql: GraphQLCall, world: World) -> None:
    query = "{ messages { nodes { subject } totalCount } threads { nodes { id } } folders { id } }"
    full = await gql(world.token, query)
    assert sorted(m["subject"] for m in full["data"]["messages"]["nodes"]) == ["mine", "sibling"]
    assert full["data"]["messages"]["totalCount"] == 2
    assert len(full["data"]["threads"]["nodes"]) == 2
    limited = await gql(world.limited, query)
    assert [m["subject"] for m in limited["data"]["messages"]["nodes"]] == ["mine"]
    assert limited["data"]["messages"]["totalCount"] == 1
    assert limited["data"]["threads"]["nodes"] == [
        {"id": encode_id("Thread", world.mine.thread.id)}
    ]
    assert limited["data"]["folders"] == [{"id": encode_id("Folder", world.mine.folder.id)}]


async def test_own_objects_are_found_on_every_path(gql: GraphQLCall, world: World) -> None:
    ids = _ids(world.mine)
    for name, query in LOOKUPS.items():
        body = await gql(world.limited, query, **_only(query, ids))
        assert "errors" not in body, (name, body)
        assert (
            body["data"] != (await gql(world.limited, query, **_only(query, _ids(None))))["data"]
        ), name
