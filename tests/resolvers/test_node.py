"""node(id:): every type by its global id, with the scope of that type."""

from __future__ import annotations

from app.types import Action
from resolvers.ids import encode_id
from tests.conftest import GraphQLCall, assert_forbidden
from tests.factories import (
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
    make_token,
)

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


async def test_every_type_round_trips(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    folder = await make_folder(account)
    thread = await make_thread(account)
    message = await make_message(account, thread=thread, folders=[folder])
    for type_name, row in (
        ("Account", account),
        ("Folder", folder),
        ("Thread", thread),
        ("Message", message),
    ):
        gid = encode_id(type_name, row.id)
        body = await gql(made.token, NODE, id=gid)
        assert body["data"]["node"] == {"__typename": type_name, "id": gid}


async def test_node_needs_the_scope_of_its_type(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    message = await make_message(account)
    accounts_only = await make_token(made.owner, actions={Action.ACCOUNTS_READ})
    denied = await gql(accounts_only, NODE, id=encode_id("Message", message.id))
    assert_forbidden(denied, "messages:metadata")
    assert denied["data"] == {"node": None}
    # Denied before any lookup: a missing message gets the same answer.
    missing = await gql(accounts_only, NODE, id=encode_id("Message", 9_999_999_999))
    assert [e["extensions"] for e in missing["errors"]] == [
        e["extensions"] for e in denied["errors"]
    ]
    allowed = await gql(accounts_only, NODE, id=encode_id("Account", account.id))
    assert allowed["data"]["node"]["__typename"] == "Account"


async def test_unknown_types_and_garbage_are_null(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    for gid in ("garbage", encode_id("Token", 1), encode_id("Attachment", 1), ""):
        body = await gql(made.token, NODE, id=gid)
        assert body["data"] == {"node": None}, body
        assert "errors" not in body
