"""sync.providers.gmail_history: one net change per message from Gmail history records."""

from __future__ import annotations

from typing import Any

from sync.providers.gmail_history import HistoryFold


def ref(message_id: str, *labels: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": message_id, "threadId": "t"}
    if labels:
        body["labelIds"] = list(labels)
    return body


def record(history_id: int, kind: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(history_id), "messages": [message], kind: [{"message": message}]}


def test_net_effect_per_message() -> None:
    fold = HistoryFold(covered=100)
    fold.fold(
        [
            record(101, "messagesAdded", ref("new", "INBOX", "UNREAD")),
            record(103, "labelsAdded", ref("new", "INBOX", "UNREAD", "STARRED")),
            record(104, "messagesAdded", ref("gone", "INBOX")),
            record(108, "labelsRemoved", ref("gone")),
            record(109, "messagesDeleted", ref("gone")),
            record(110, "labelsRemoved", ref("old", "INBOX")),
            record(111, "labelsAdded", ref("other", "STARRED")),
            record(115, "labelsAdded", ref("old", "INBOX", "STARRED")),
            record(116, "labelsAdded", ref("doomed", "TRASH")),
            record(117, "messagesDeleted", ref("doomed")),
        ]
    )
    assert list(fold.added) == ["new"]
    assert list(fold.deleted) == ["gone", "doomed"]
    flags = fold.flag_updates()
    assert [f.provider_id for f in flags] == ["other", "old"]  # in the order of their last change
    assert flags[1].label_ids == ("INBOX", "STARRED")
    assert flags[1].starred
    assert not flags[1].unread
    assert fold.covered == 117


def test_no_labels_key_means_no_labels() -> None:
    fold = HistoryFold(covered=1)
    fold.fold([record(2, "labelsRemoved", ref("read"))])
    [flags] = fold.flag_updates()
    assert (flags.label_ids, flags.unread, flags.starred) == ((), False, False)


def test_pages_fold_like_one_listing_and_covered_only_grows() -> None:
    fold = HistoryFold(covered=50)
    fold.fold([record(60, "messagesAdded", ref("a"))])
    fold.fold([record(70, "messagesDeleted", ref("a"))])
    fold.fold([])
    assert (list(fold.added), list(fold.deleted), fold.covered) == ([], ["a"], 70)
