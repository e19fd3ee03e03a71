"""Acting on mail end to end: the use case, the adapters' writes over HTTP(S) against the Gmail
and Microsoft emulators, and the cache updated from the provider's answers.

For each action: the emulated mailbox changed, the cache says the same, a change-log row exists.
A provider failure answers ``ActionFailed`` and leaves the cache as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.events import InProcessBus
from app.models import Account, ChangeLogEntry, Folder, Message
from app.services.errors import InvalidInput, NotFound
from app.services.message_actions import (
    ActionFailed,
    ActionRequest,
    act_on_messages,
    register_message_writer,
)
from app.settings import Settings
from app.types import Action, Provider
from emulators.gmail_faults import FaultKind
from resolvers.ids import encode_id
from sync.actions import AdapterWriter
from sync.engine import OutcomeKind, sync_account
from sync.providers.actions import ActionKind
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_owner, make_token
from tests.sync.emulated_graph import GraphFactory
from tests.sync.harness import EmulatedGmail


@pytest.fixture
def writer_for() -> Iterator[Any]:
    previous = register_message_writer(None)

    def install(factory: Any) -> None:
        register_message_writer(AdapterWriter(factory, InProcessBus()))

    yield install
    register_message_writer(previous)


async def synced_gmail(gmail: EmulatedGmail) -> tuple[Account, str]:
    mailbox = gmail.new_user()
    for n in range(3):
        mailbox.deliver(
            f"From: a{n}@example.com\r\nTo: {mailbox.email}\r\nSubject: s{n}\r\n\r\nhello".encode(),
            label_ids=["INBOX", "UNREAD"],
        )
    account = await make_account((await make_owner()).owner, address=mailbox.email)
    outcome = await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    assert outcome.kind is OutcomeKind.SYNCED
    return account, mailbox.email


async def synced_graph(graph: GraphFactory) -> Account:
    mailbox = graph.served.new_mailbox()
    for n in range(3):
        graph.served.emulator.add_message(mailbox.address, subject=f"s{n}", text="hello")
    account = await make_account(
        (await make_owner()).owner, address=mailbox.address, provider=Provider.GRAPH
    )
    graph.mailboxes[mailbox.address] = mailbox
    outcome = await sync_account(account.id, graph, InProcessBus())
    assert outcome.kind is OutcomeKind.SYNCED
    return account


async def first_message(account: Account) -> Message:
    message = await Message.filter(account_id=account.id).order_by("id").first()
    assert message is not None
    return message


async def changes(account: Account) -> int:
    return await ChangeLogEntry.filter(account_id=account.id).count()


async def act(account: Account, kind: ActionKind, ids: list[int], **more: Any) -> None:
    await act_on_messages([account.id], ActionRequest(kind, ids, **more))


def gmail_labels(gmail: EmulatedGmail, email: str, provider_id: str) -> set[str]:
    return set(gmail.emulator.mailbox(email).get(provider_id).label_ids)


async def test_gmail_actions_reach_gmail_and_the_cache(
    db: Settings, gmail: EmulatedGmail, writer_for: Any
) -> None:
    writer_for(gmail.adapter_factory)
    account, email = await synced_gmail(gmail)
    message = await first_message(account)
    pid = message.provider_id
    before = await changes(account)

    await act(account, ActionKind.MARK_READ, [message.id], flag=True)
    assert "UNREAD" not in gmail_labels(gmail, email, pid)
    row = await Message.get(id=message.id)
    assert not row.unread
    assert await changes(account) == before + 1

    await act(account, ActionKind.STAR, [message.id], flag=True)
    assert "STARRED" in gmail_labels(gmail, email, pid)
    assert (await Message.get(id=message.id)).starred

    await act(account, ActionKind.ARCHIVE, [message.id])
    assert "INBOX" not in gmail_labels(gmail, email, pid)
    assert "INBOX" not in (await Message.get(id=message.id)).label_ids

    inbox = await Folder.get(account_id=account.id, provider_id="INBOX")
    await act(account, ActionKind.MOVE, [message.id], folder_id=inbox.id)
    assert "INBOX" in gmail_labels(gmail, email, pid)

    await act(account, ActionKind.TRASH, [message.id])
    assert "TRASH" in gmail_labels(gmail, email, pid)
    assert "TRASH" in (await Message.get(id=message.id)).label_ids

    await act(account, ActionKind.DELETE, [message.id])
    assert not await Message.filter(id=message.id).exists()
    assert pid not in {m.id for m in _listed(gmail, email)}
    assert await changes(account) == before + 6


def _listed(gmail: EmulatedGmail, email: str) -> list[Any]:
    page = gmail.emulator.mailbox(email).list_messages(include_spam_trash=True, max_results=500)
    return list(page.items)


async def test_gmail_labels_add_and_remove(
    db: Settings, gmail: EmulatedGmail, writer_for: Any
) -> None:
    writer_for(gmail.adapter_factory)
    account, email = await synced_gmail(gmail)
    message = await first_message(account)
    important = await Folder.get(account_id=account.id, provider_id="IMPORTANT")
    await act(account, ActionKind.CHANGE_LABELS, [message.id], add_label_ids=[important.id])
    assert "IMPORTANT" in gmail_labels(gmail, email, message.provider_id)
    assert "IMPORTANT" in (await Message.get(id=message.id)).label_ids
    await act(account, ActionKind.CHANGE_LABELS, [message.id], remove_label_ids=[important.id])
    assert "IMPORTANT" not in gmail_labels(gmail, email, message.provider_id)


async def test_a_gmail_failure_is_typed_and_leaves_the_cache(
    db: Settings, gmail: EmulatedGmail, writer_for: Any
) -> None:
    writer_for(gmail.adapter_factory)
    account, email = await synced_gmail(gmail)
    message = await first_message(account)
    before = await changes(account)
    gmail.emulator.faults.inject(FaultKind.BACKEND_ERROR, method="messages.modify", user=email)
    with pytest.raises(ActionFailed) as failed:
        await act(account, ActionKind.MARK_READ, [message.id], flag=True)
    assert failed.value.code == "PROVIDER_ERROR"
    assert "UNREAD" in gmail_labels(gmail, email, message.provider_id)
    assert (await Message.get(id=message.id)).unread
    assert await changes(account) == before


async def test_unknown_messages_and_foreign_folders_reach_no_provider(
    db: Settings, gmail: EmulatedGmail, writer_for: Any
) -> None:
    writer_for(gmail.adapter_factory)
    account, _ = await synced_gmail(gmail)
    other, _ = await synced_gmail(gmail)
    message = await first_message(account)
    with pytest.raises(NotFound):
        await act(account, ActionKind.MARK_READ, [(await first_message(other)).id])
    foreign = await Folder.get(account_id=other.id, provider_id="INBOX")
    with pytest.raises(InvalidInput) as refused:
        await act(account, ActionKind.MOVE, [message.id], folder_id=foreign.id)
    assert refused.value.field == "folderId"
    with pytest.raises(InvalidInput):
        await act(account, ActionKind.MARK_READ, list(range(1, 200)))


async def test_graph_actions_reach_graph_and_the_cache(
    db: Settings, graph: GraphFactory, writer_for: Any
) -> None:
    writer_for(graph)
    account = await synced_graph(graph)
    emulator = graph.served.emulator
    message = await first_message(account)
    pid = message.provider_id
    before = await changes(account)

    await act(account, ActionKind.MARK_READ, [message.id], flag=True)
    assert emulator.message(account.address, pid).is_read
    assert not (await Message.get(id=message.id)).unread
    assert await changes(account) == before + 1

    await act(account, ActionKind.STAR, [message.id], flag=True)
    assert emulator.message(account.address, pid).flag_status == "flagged"
    assert (await Message.get(id=message.id)).starred

    archive = emulator.store.folder(emulator.user_id(account.address), "archive").id
    await act(account, ActionKind.ARCHIVE, [message.id])
    moved = await Message.get(account_id=account.id, provider_id=pid)
    assert emulator.message(account.address, pid).folder_id == archive
    assert archive in moved.label_ids

    deleted_items = emulator.store.folder(emulator.user_id(account.address), "deleteditems").id
    await act(account, ActionKind.TRASH, [moved.id])
    assert emulator.message(account.address, pid).folder_id == deleted_items

    inbox = emulator.store.folder(emulator.user_id(account.address), "inbox").id
    inbox_folder = await Folder.get(account_id=account.id, provider_id=inbox)
    await act(account, ActionKind.MOVE, [moved.id], folder_id=inbox_folder.id)
    assert emulator.message(account.address, pid).folder_id == inbox
    assert inbox in (await Message.get(id=moved.id)).label_ids

    await act(account, ActionKind.DELETE, [moved.id])
    assert not await Message.filter(account_id=account.id, provider_id=pid).exists()
    assert pid not in {
        m.immutable_id for m in emulator.store.messages(emulator.user_id(account.address))
    }
    assert await changes(account) >= before + 6


async def test_graph_has_no_labels_and_its_failures_are_typed(
    db: Settings, graph: GraphFactory, writer_for: Any
) -> None:
    writer_for(graph)
    account = await synced_graph(graph)
    emulator = graph.served.emulator
    message = await first_message(account)
    folder = await Folder.filter(account_id=account.id).first()
    assert folder is not None
    with pytest.raises(InvalidInput):
        await act(account, ActionKind.CHANGE_LABELS, [message.id], add_label_ids=[folder.id])
    before = await changes(account)
    emulator.inject_fault(500, count=1, user_ref=account.address)
    with pytest.raises(ActionFailed):
        await act(account, ActionKind.STAR, [message.id], flag=True)
    emulator.inject_fault(403, count=1, user_ref=account.address)
    with pytest.raises(ActionFailed):
        await act(account, ActionKind.MARK_READ, [message.id], flag=True)
    assert emulator.message(account.address, message.provider_id).flag_status == "notFlagged"
    assert not emulator.message(account.address, message.provider_id).is_read
    assert (await Message.get(id=message.id)).unread
    assert await changes(account) == before


MARK_READ = """
mutation($ids: [ID!]!) {
  markRead(ids: $ids, read: true) {
    __typename
    ... on MessagesUpdated { ids messages { id unread } }
    ... on MutationError { code message field }
  }
}
"""


async def test_mark_read_through_graphql(
    db: Settings, gmail: EmulatedGmail, writer_for: Any, gql: GraphQLCall
) -> None:
    writer_for(gmail.adapter_factory)
    mailbox = gmail.new_user()
    mailbox.deliver(
        f"From: a@example.com\r\nTo: {mailbox.email}\r\nSubject: s\r\n\r\nhi".encode(),
        label_ids=["INBOX", "UNREAD"],
    )
    made = await make_owner()
    account = await make_account(made.owner, address=mailbox.email)
    await sync_account(account.id, gmail.adapter_factory, InProcessBus())
    message = await first_message(account)
    global_id = encode_id("Message", message.id)
    token = await make_token(made.owner, actions={Action.MESSAGES_MODIFY, Action.MESSAGES_METADATA})

    gmail.emulator.faults.inject(
        FaultKind.BACKEND_ERROR, method="messages.modify", user=mailbox.email
    )
    failed = (await gql(token, MARK_READ, ids=[global_id]))["data"]["markRead"]
    assert (failed["__typename"], failed["code"]) == ("MutationError", "PROVIDER_ERROR")
    assert (await Message.get(id=message.id)).unread

    done = (await gql(token, MARK_READ, ids=[global_id]))["data"]["markRead"]
    assert done == {
        "__typename": "MessagesUpdated",
        "ids": [global_id],
        "messages": [{"id": global_id, "unread": False}],
    }
    assert "UNREAD" not in gmail_labels(gmail, mailbox.email, message.provider_id)

    # Another owner's message is not found, and no provider hears of it.
    stranger = await make_owner()
    other = await make_token(stranger.owner, actions={Action.MESSAGES_MODIFY})
    refused = (await gql(other, MARK_READ, ids=[global_id]))["data"]["markRead"]
    assert (refused["__typename"], refused["code"]) == ("MutationError", "NOT_FOUND")


TRASH = """
mutation($ids: [ID!]!) {
  trash(ids: $ids) {
    __typename
    ... on MessagesUpdated { ids messages { id labels { name } } }
    ... on MutationError { code }
  }
}
"""


async def test_trash_through_graphql_on_graph_and_token_accounts(
    db: Settings, graph: GraphFactory, writer_for: Any, gql: GraphQLCall
) -> None:
    writer_for(graph)
    account = await synced_graph(graph)
    owner = await account.owner
    other = await make_account(owner, address="other@example.com")
    message = await first_message(account)
    global_id = encode_id("Message", message.id)
    emulator = graph.served.emulator

    # A token of the same owner limited to another account does not see the message.
    narrow = await make_token(owner, actions={Action.MESSAGES_MODIFY}, account_ids=[other.id])
    refused = (await gql(narrow, TRASH, ids=[global_id]))["data"]["trash"]
    assert refused == {"__typename": "MutationError", "code": "NOT_FOUND"}
    assert emulator.message(account.address, message.provider_id).folder_id != (
        emulator.store.folder(emulator.user_id(account.address), "deleteditems").id
    )

    token = await make_token(owner, actions={Action.MESSAGES_MODIFY, Action.MESSAGES_METADATA})
    done = (await gql(token, TRASH, ids=[global_id]))["data"]["trash"]
    assert done["__typename"] == "MessagesUpdated"
    assert done["ids"] == [global_id]
    deleted_items = emulator.store.folder(emulator.user_id(account.address), "deleteditems")
    assert emulator.message(account.address, message.provider_id).folder_id == deleted_items.id
    assert [label["name"] for label in done["messages"][0]["labels"]] == [
        deleted_items.display_name
    ]
