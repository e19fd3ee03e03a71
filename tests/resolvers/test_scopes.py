"""One denial test per scoped field: without the scope, FORBIDDEN and no data; with it, data.

``SCOPED_FIELDS`` must name every field that carries ``@requiresScope`` in schema.graphql;
``test_every_scoped_field_is_covered`` fails when a new scoped field has no case here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.types import ALL_ACTIONS, Action
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
from tests.subscriptions.test_subscription_scopes import SCOPED_SUBSCRIPTIONS

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text(encoding="utf-8")

# (type.field, scope, query, path to the data that must be absent/present)
SCOPED_FIELDS: list[tuple[str, Action, str, tuple[str, ...]]] = [
    ("Query.viewer", Action.OWNER, "{ viewer { name } }", ("viewer",)),
    ("Query.accounts", Action.ACCOUNTS_READ, "{ accounts { address } }", ("accounts",)),
    (
        "Query.account",
        Action.ACCOUNTS_READ,
        "query($id: ID!) { account(id: $id) { address } }",
        ("account",),
    ),
    ("Owner.tokens", Action.OWNER, "{ viewer { tokens { name } } }", ("viewer",)),
    ("Owner.usage", Action.OWNER, "{ viewer { usage { status } } }", ("viewer",)),
    (
        "Mutation.createToken",
        Action.OWNER,
        'mutation { createToken(input: {name: "n", scopes: [ACCOUNTS_READ]}) { __typename } }',
        ("createToken",),
    ),
    (
        "Mutation.revokeToken",
        Action.OWNER,
        'mutation { revokeToken(id: "VG9rZW46OTk5OTk") { __typename } }',
        ("revokeToken",),
    ),
    (
        "Mutation.updateProfile",
        Action.OWNER,
        'mutation { updateProfile(name: "New") { __typename } }',
        ("updateProfile",),
    ),
    ("Query.exports", Action.OWNER, "{ exports { id } }", ("exports",)),
    (
        "Mutation.requestExport",
        Action.OWNER,
        "mutation { requestExport { __typename } }",
        ("requestExport",),
    ),
    # A confirmation that is not the owner's email answers a MutationError and terminates nothing.
    (
        "Mutation.terminateOwner",
        Action.OWNER,
        'mutation { terminateOwner(confirm: "someone@else.example") { __typename } }',
        ("terminateOwner",),
    ),
    # A returnUrl outside the allow-list answers a MutationError: data without any OAuth client.
    (
        "Mutation.connectGmail",
        Action.ACCOUNTS_MANAGE,
        'mutation { connectGmail(returnUrl: "https://elsewhere.example/") { __typename } }',
        ("connectGmail",),
    ),
    (
        "Mutation.connectMicrosoft",
        Action.ACCOUNTS_MANAGE,
        'mutation { connectMicrosoft(returnUrl: "https://elsewhere.example/") { __typename } }',
        ("connectMicrosoft",),
    ),
    (
        # Refused before any connection (plaintext to a remote host): no server needed.
        "Mutation.connectImap",
        Action.ACCOUNTS_MANAGE,
        'mutation { connectImap(input: {imap: {host: "imap.example.com", port: 143, '
        'security: PLAIN, username: "u"}, password: "p"}) { __typename } }',
        ("connectImap",),
    ),
    (
        "Mutation.disconnectAccount",
        Action.ACCOUNTS_MANAGE,
        'mutation { disconnectAccount(id: "QWNjb3VudDo5OTk5OTk5") { __typename } }',
        ("disconnectAccount",),
    ),
    # The read API. $id is the account; $message has a cached body, $bare has none.
    ("Query.messages", Action.MESSAGES_METADATA, "{ messages { nodes { id } } }", ("messages",)),
    (
        "Query.message",
        Action.MESSAGES_METADATA,
        "query($message: ID!) { message(id: $message) { id } }",
        ("message",),
    ),
    ("Query.threads", Action.MESSAGES_METADATA, "{ threads { nodes { id } } }", ("threads",)),
    (
        "Query.thread",
        Action.MESSAGES_METADATA,
        "query($thread: ID!) { thread(id: $thread) { id } }",
        ("thread",),
    ),
    ("Query.folders", Action.MESSAGES_METADATA, "{ folders { id } }", ("folders",)),
    (
        "Query.folder",
        Action.MESSAGES_METADATA,
        "query($folder: ID!) { folder(id: $folder) { id } }",
        ("folder",),
    ),
    *(
        (
            f"Account.{edge}",
            Action.MESSAGES_METADATA,
            f"query($id: ID!) {{ account(id: $id) {{ {edge} {selection} }} }}",
            ("account", edge),
        )
        for edge, selection in (
            ("folders", "{ id }"),
            ("threads", "{ nodes { id } }"),
            ("messages", "{ nodes { id } }"),
        )
    ),
    *(
        (
            f"{type_name}.account",
            Action.ACCOUNTS_READ,
            f"query($v: ID!) {{ {root}(id: $v) {{ account {{ address }} }} }}".replace(
                "$v", "$" + root
            ),
            (root, "account"),
        )
        for type_name, root in (("Message", "message"), ("Thread", "thread"), ("Folder", "folder"))
    ),
    *(
        (
            f"Message.{field}",
            Action.MESSAGES_CONTENT,
            f"query($m: ID!) {{ message(id: $m) {{ {field} {selection} }} }}".replace(
                "$m", "$bare" if field == "bodyUnavailableReason" else "$message"
            ),
            ("message", field),
        )
        for field, selection in (
            ("bodySource", ""),
            ("bodyUnavailableReason", ""),
            ("textBody", ""),
            ("htmlBody", ""),
            ("hasRemoteImages", ""),
            ("rawHtmlBody", ""),
            ("rawMime", ""),
            ("headers", "{ name }"),
            ("attachments", "{ downloadUrl }"),
        )
    ),
    (
        "Mutation.setCachePolicy",
        Action.ACCOUNTS_MANAGE,
        "mutation($id: ID!) { setCachePolicy(accountId: $id, retentionDays: 30) { __typename } }",
        ("setCachePolicy",),
    ),
    # Unknown messages answer a MutationError (NOT_FOUND): data, and nothing reaches a provider.
    *(
        (
            f"Mutation.{name}",
            Action.MESSAGES_MODIFY,
            f'mutation {{ {name}(ids: ["TWVzc2FnZTo5OTk5OQ"]{extra}) {{ __typename }} }}',
            (name,),
        )
        for name, extra in (
            ("markRead", ""),
            ("star", ""),
            ("addLabels", ', labelIds: ["Rm9sZGVyOjk5OTk5"]'),
            ("removeLabels", ', labelIds: ["Rm9sZGVyOjk5OTk5"]'),
            ("moveMessages", ', folderId: "Rm9sZGVyOjk5OTk5"'),
            ("archive", ""),
            ("trash", ""),
            ("deletePermanently", ""),
        )
    ),
    # An unknown account answers a MutationError (NOT_FOUND): data, and nothing is sent.
    (
        "Mutation.sendMessage",
        Action.MESSAGES_SEND,
        'mutation { sendMessage(input: {accountId: "QWNjb3VudDo5OTk5OQ", idempotencyKey: "k",'
        ' to: [{email: "a@example.com"}], textBody: "x"}) { __typename } }',
        ("sendMessage",),
    ),
    # Unknown accounts and drafts answer a MutationError (NOT_FOUND): data, nothing at a provider.
    (
        "Mutation.createDraft",
        Action.MESSAGES_DRAFTS,
        'mutation { createDraft(accountId: "QWNjb3VudDo5OTk5OQ", input: {subject: "s"})'
        " { __typename } }",
        ("createDraft",),
    ),
    (
        "Mutation.updateDraft",
        Action.MESSAGES_DRAFTS,
        'mutation { updateDraft(id: "TWVzc2FnZTo5OTk5OQ", input: {subject: "s"}) { __typename } }',
        ("updateDraft",),
    ),
    (
        "Mutation.deleteDraft",
        Action.MESSAGES_DRAFTS,
        'mutation { deleteDraft(id: "TWVzc2FnZTo5OTk5OQ") { __typename } }',
        ("deleteDraft",),
    ),
    (
        "Mutation.sendDraft",
        Action.MESSAGES_SEND,
        'mutation { sendDraft(id: "TWVzc2FnZTo5OTk5OQ", idempotencyKey: "k") { __typename } }',
        ("sendDraft",),
    ),
]


# The scope of the field that leads to each type.
PARENT_SCOPES: dict[str, set[Action]] = {
    "Owner": {Action.OWNER},
    "Account": {Action.ACCOUNTS_READ},
    "Message": {Action.MESSAGES_METADATA},
    "Thread": {Action.MESSAGES_METADATA},
    "Folder": {Action.MESSAGES_METADATA},
}


def _scoped_fields_in_schema() -> set[str]:
    found: set[str] = set()
    current_type = None
    for line in SCHEMA.splitlines():
        header = re.match(r"^(?:type|interface) (\w+)", line)
        if header:
            current_type = header.group(1)
        field = re.match(r"^\s+(\w+)[(:].*@requiresScope", line)
        if field and current_type:
            found.add(f"{current_type}.{field.group(1)}")
    return found


def test_every_scoped_field_is_covered() -> None:
    # Subscriptions need a socket: tests/subscriptions/test_subscription_scopes.py covers them.
    covered = {name for name, *_ in SCOPED_FIELDS} | {name for name, *_ in SCOPED_SUBSCRIPTIONS}
    assert covered == _scoped_fields_in_schema()


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if data is None:
            return None
        data = data[key]
    return data


@pytest.mark.parametrize(
    ("field", "scope", "query", "path"), SCOPED_FIELDS, ids=[f[0] for f in SCOPED_FIELDS]
)
async def test_scope_is_enforced(
    db: object, gql: GraphQLCall, field: str, scope: Action, query: str, path: tuple[str, ...]
) -> None:
    made = await make_owner()
    account = await make_account(made.owner)
    folder = await make_folder(account)
    thread = await make_thread(account)
    body = {"text_body": "t", "html_body": "<p>h</p>", "headers": [["A", "b"]], "raw_mime": b"m"}
    attachment = {"filename": "a.txt", "content_type": "text/plain", "size": 1}
    message = await make_message(
        account, folders=[folder], thread=thread, body=body, attachments=[attachment]
    )
    bare = await make_message(account)
    known = {
        "id": encode_id("Account", account.id),
        "message": encode_id("Message", message.id),
        "bare": encode_id("Message", bare.id),
        "thread": encode_id("Thread", thread.id),
        "folder": encode_id("Folder", folder.id),
    }
    variables = {name: value for name, value in known.items() if f"${name}:" in query}
    # Nested fields need their parent's scope: keep it, drop only the one under test.
    parent_scopes = PARENT_SCOPES.get(field.split(".")[0], set()) - {scope}
    without = await make_token(made.owner, actions=(ALL_ACTIONS - {scope}) | parent_scopes)
    denied = await gql(without, query, **variables)
    assert_forbidden(denied, scope.value)
    assert _dig(denied.get("data"), path) is None

    with_scope = await make_token(made.owner, actions={scope} | parent_scopes)
    granted = await gql(with_scope, query, **variables)
    assert "errors" not in granted, granted
    assert _dig(granted["data"], path) is not None
