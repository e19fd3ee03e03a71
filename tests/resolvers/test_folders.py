"""Folders and labels: roles, counts, nesting, their messages, and message labels."""

from __future__ import annotations

from resolvers.ids import encode_id
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_folder, make_message, make_owner


async def test_folders_with_roles_counts_and_parents(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    inbox = await make_folder(account, name="INBOX", role="inbox", total_count=5, unread_count=2)
    await make_folder(account, name="Projects/Apollo", parent_provider_id=inbox.provider_id)
    body = await gql(
        made.token,
        "{ folders { name role totalCount unreadCount parent { name } account { address } } }",
    )
    assert "errors" not in body, body
    assert body["data"]["folders"] == [
        {
            "name": "INBOX",
            "role": "INBOX",
            "totalCount": 5,
            "unreadCount": 2,
            "parent": None,
            "account": {"address": account.address},
        },
        {
            "name": "Projects/Apollo",
            "role": "CUSTOM",
            "totalCount": 0,
            "unreadCount": 0,
            "parent": {"name": "INBOX"},
            "account": {"address": account.address},
        },
    ]


async def test_folder_messages_and_labels(db: object, gql: GraphQLCall) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    inbox = await make_folder(account, name="Inbox", role="inbox")
    work = await make_folder(account, name="Work")
    await make_message(account, subject="both", folders=[inbox, work], unread=True)
    await make_message(account, subject="inbox only", folders=[inbox])
    await make_message(account, subject="nowhere")
    body = await gql(
        made.token,
        """query($id: ID!) { folder(id: $id) { name
             all: messages { nodes { subject labels { name } } }
             unread: messages(filter: {unread: true}) { nodes { subject } } } }""",
        id=encode_id("Folder", work.id),
    )
    assert "errors" not in body, body
    folder = body["data"]["folder"]
    assert folder["all"]["nodes"] == [
        {"subject": "both", "labels": [{"name": "Inbox"}, {"name": "Work"}]}
    ]
    assert folder["unread"]["nodes"] == [{"subject": "both"}]
    per_account = await gql(
        made.token,
        "query($id: ID!) { account(id: $id) { folders { name } } }",
        id=encode_id("Account", account.id),
    )
    assert per_account["data"]["account"]["folders"] == [{"name": "Inbox"}, {"name": "Work"}]
