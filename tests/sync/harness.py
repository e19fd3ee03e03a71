"""Helpers the sync tests share: the cache as plain values, and the emulated Gmail as the truth.

``cache_snapshot(account_id)`` reads every cache table of one account into dicts keyed by
provider ids (cache ids differ between runs; provider ids do not), so tests compare a whole
cache with ``==``. ``mailbox_truth(mailbox)`` is what the emulated mailbox holds, in the same
shape, for the properties sync must preserve (membership, labels, flags, threads).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.models import Attachment, Folder, Message, MessageBody, MessageLabel, Thread
from emulators.gmail_store import Mailbox


@dataclass(frozen=True)
class CacheSnapshot:
    messages: dict[str, dict[str, Any]]
    threads: dict[str, dict[str, Any]]
    folders: dict[str, dict[str, Any]]


async def cache_snapshot(account_id: int) -> CacheSnapshot:
    folders = {
        row["provider_id"]: row
        for row in await Folder.filter(account_id=account_id).values(
            "id", "provider_id", "name", "role", "parent_provider_id"
        )
    }
    folder_by_id = {row["id"]: pid for pid, row in folders.items()}
    threads = {
        row["id"]: row
        for row in await Thread.filter(account_id=account_id).values(
            "id",
            "provider_id",
            "subject",
            "snippet",
            "participants",
            "last_message_at",
            "message_count",
            "unread_count",
        )
    }
    rows = await Message.filter(account_id=account_id).values(
        "id",
        "provider_id",
        "thread_id",
        "subject",
        "date",
        "snippet",
        "from_addresses",
        "to_addresses",
        "unread",
        "starred",
        "draft",
        "label_ids",
        "has_attachments",
        "message_id_header",
    )
    ids = [row["id"] for row in rows]
    labels: dict[int, list[str]] = {message_id: [] for message_id in ids}
    for message_id, folder_id in await MessageLabel.filter(message_id__in=ids).values_list(
        "message_id", "folder_id"
    ):
        labels[message_id].append(folder_by_id[folder_id])
    attachments: dict[int, list[tuple[Any, ...]]] = {message_id: [] for message_id in ids}
    for row in (
        await Attachment.filter(message_id__in=ids)
        .order_by("id")
        .values("message_id", "filename", "content_type", "size", "part_id")
    ):
        attachments[row["message_id"]].append(
            (row["filename"], row["content_type"], row["size"], row["part_id"])
        )
    bodies = {
        row["message_id"]: (row["text_body"], row["html_body"])
        for row in await MessageBody.filter(message_id__in=ids).values(
            "message_id", "text_body", "html_body"
        )
    }
    messages = {}
    for row in rows:
        message_id = row.pop("id")
        thread = threads.get(row.pop("thread_id"))
        messages[row["provider_id"]] = {
            **row,
            "thread": None if thread is None else thread["provider_id"],
            "labels": sorted(labels[message_id]),
            "attachments": attachments[message_id],
            "body": bodies.get(message_id),
        }
    for row in folders.values():
        row.pop("id")
    by_provider_id = {}
    for row in threads.values():
        row.pop("id")
        by_provider_id[row["provider_id"]] = row
    return CacheSnapshot(messages, by_provider_id, folders)


def mailbox_truth(mailbox: Mailbox) -> dict[str, dict[str, Any]]:
    """Every message of an emulated mailbox (spam and trash included): thread, labels, flags."""
    listed = []
    page_token = None
    while True:
        page = mailbox.list_messages(
            include_spam_trash=True, page_token=page_token, max_results=500
        )
        listed.extend(page.items)
        page_token = page.next_page_token
        if page_token is None:
            break
    return {
        message.id: {
            "thread": message.thread_id,
            "label_ids": sorted(message.label_ids),
            "unread": "UNREAD" in message.label_ids,
            "starred": "STARRED" in message.label_ids,
        }
        for message in listed
    }


def cache_truth(snapshot: CacheSnapshot) -> dict[str, dict[str, Any]]:
    """The cache in ``mailbox_truth``'s shape."""
    return {
        pid: {
            "thread": message["thread"],
            "label_ids": sorted(message["label_ids"]),
            "unread": message["unread"],
            "starred": message["starred"],
        }
        for pid, message in snapshot.messages.items()
    }


def thread_counts(snapshot: CacheSnapshot) -> dict[str, tuple[int, int]]:
    """(message_count, unread_count) per thread, as stored and as the messages say."""
    counted: Counter[str] = Counter()
    unread: Counter[str] = Counter()
    for message in snapshot.messages.values():
        counted[message["thread"]] += 1
        unread[message["thread"]] += int(message["unread"])
    return {thread: (counted[thread], unread[thread]) for thread in counted}
