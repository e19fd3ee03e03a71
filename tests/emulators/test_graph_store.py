"""Mailbox state of the Graph emulator: ids across moves, change history, threads, locking."""

from __future__ import annotations

import threading

import pytest

from emulators.graph_errors import GraphError
from emulators.graph_mime import Recipient, build_mime
from emulators.graph_store import GraphStore
from emulators.graph_testing import ManualClock
from emulators.graph_types import IdType

USER = "user-1"


def mime(subject: str = "Hello", **headers: str) -> bytes:
    return build_mime(
        subject=subject,
        sender=Recipient("Ann", "ann@example.com"),
        to=[Recipient("", "me@contoso.test")],
        text="body",
        message_id=headers.get("message_id"),
        in_reply_to=headers.get("in_reply_to"),
    )


@pytest.fixture
def store() -> GraphStore:
    store = GraphStore(ManualClock())
    store.create_mailbox(USER, "me@contoso.test", "Me")
    return store


def test_well_known_folders_answer_by_name(store: GraphStore) -> None:
    names = {f.display_name for f in store.folders(USER)}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk Email", "Archive"} <= names
    assert store.folder(USER, "Inbox") == store.folder(USER, "inbox")


def test_a_move_replaces_the_rest_id_and_keeps_the_immutable_id(store: GraphStore) -> None:
    message = store.deliver(USER, "inbox", mime())

    moved = store.move_message(USER, message.rest_id, "archive")

    assert moved.immutable_id == message.immutable_id
    assert moved.rest_id != message.rest_id
    assert store.message(USER, message.immutable_id) == moved
    with pytest.raises(GraphError) as stale:
        store.message(USER, message.rest_id)
    assert stale.value.status == 404


def test_changes_report_moves_as_changed_and_deletes_as_deleted(store: GraphStore) -> None:
    inbox = store.folder(USER, "inbox").id
    kept, moved, deleted = (store.deliver(USER, "inbox", mime(s)) for s in ("a", "b", "c"))
    since = store.current_seq(USER)
    store.update_message(USER, kept.rest_id, is_read=True)
    store.move_message(USER, moved.rest_id, "archive")
    store.delete_message(USER, deleted.rest_id)

    present, removed = store.message_changes(
        USER, inbox, since, store.current_seq(USER), IdType.REST
    )

    assert [m.immutable_id for m in present] == [kept.immutable_id]
    assert present[0].is_read
    assert {(t.rest_id, t.reason) for t in removed} == {
        (moved.rest_id, "changed"),
        (deleted.rest_id, "deleted"),
    }


def test_out_and_back_is_no_removal_for_immutable_ids_only(store: GraphStore) -> None:
    inbox = store.folder(USER, "inbox").id
    message = store.deliver(USER, "inbox", mime())
    since = store.current_seq(USER)
    store.move_message(USER, message.immutable_id, "archive")
    store.move_message(USER, message.immutable_id, "inbox")
    upto = store.current_seq(USER)

    _, removed_immutable = store.message_changes(USER, inbox, since, upto, IdType.IMMUTABLE)
    _, removed_rest = store.message_changes(USER, inbox, since, upto, IdType.REST)

    assert removed_immutable == []
    assert [t.rest_id for t in removed_rest] == [message.rest_id]


def test_replies_join_the_conversation_of_their_parent(store: GraphStore) -> None:
    parent = store.deliver(USER, "inbox", mime("Plans", message_id="<p@x>"))
    reply = store.deliver(USER, "inbox", mime("Re: Plans", in_reply_to="<p@x>"))
    same_subject = store.deliver(USER, "inbox", mime("Plans"))

    assert reply.conversation_id == parent.conversation_id
    assert same_subject.conversation_id != parent.conversation_id


def test_folders_can_nest_rename_and_go_away_with_their_mail(store: GraphStore) -> None:
    projects = store.create_folder(USER, "Projects")
    child = store.create_folder(USER, "2025", projects.id)
    store.deliver(USER, child.id, mime())
    with pytest.raises(GraphError) as duplicate:
        store.create_folder(USER, "projects")
    assert duplicate.value.status == 409

    assert store.rename_folder(USER, child.id, "2026").display_name == "2026"
    store.delete_folder(USER, projects.id)

    assert store.messages(USER) == []
    with pytest.raises(GraphError):
        store.folder(USER, child.id)
    with pytest.raises(GraphError) as distinguished:
        store.delete_folder(USER, "inbox")
    assert distinguished.value.code == "ErrorDeleteDistinguishedFolder"


def test_concurrent_writers_never_share_an_id_or_a_sequence_number(store: GraphStore) -> None:
    def deliver_many() -> None:
        for _ in range(50):
            store.deliver(USER, "inbox", mime())

    threads = [threading.Thread(target=deliver_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    messages = store.messages(USER)
    assert len({m.immutable_id for m in messages}) == 200
    assert len({m.changed_seq for m in messages}) == 200


def test_listeners_hear_a_move_as_deleted_then_created(store: GraphStore) -> None:
    heard: list[tuple[str, str]] = []
    store.add_listener(lambda change: heard.append((change.change_type, change.folder_id)))
    message = store.deliver(USER, "inbox", mime())
    store.move_message(USER, message.rest_id, "archive")

    inbox, archive = store.folder(USER, "inbox").id, store.folder(USER, "archive").id
    assert heard == [("created", inbox), ("deleted", inbox), ("created", archive)]
