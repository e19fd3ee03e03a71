"""Graph delta over https, as PROVIDERS.md M1-M5 describe it: follow links, never both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from emulators.graph_testing import EmulatedMailbox, ManualClock, ServedEmulator

clock = ManualClock()


def run_round(graph: httpx.Client, url: str, **headers: str) -> tuple[list[Any], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages). Checks M2 on every page."""
    items: list[Any] = []
    pages = 0
    while True:
        answer = graph.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        assert ("@odata.nextLink" in page) != ("@odata.deltaLink" in page), page.keys()
        items += page["value"]
        if "@odata.deltaLink" in page:
            return items, page["@odata.deltaLink"], pages
        url = page["@odata.nextLink"]


def fill(served: ServedEmulator, mailbox: EmulatedMailbox, count: int) -> list[str]:
    return [
        served.emulator.add_message(mailbox.address, subject=f"message {n}").rest_id
        for n in range(count)
    ]


def test_pages_follow_maxpagesize_until_the_delta_link(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    ids = fill(served, mailbox, 23)

    first = graph.get(
        "me/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=5"}
    )
    assert "odata.maxpagesize=5" in first.headers.get_list("Preference-Applied")
    assert [len(first.json()["value"])] == [5]
    items, _, pages = run_round(graph, first.json()["@odata.nextLink"])

    assert pages == 4  # 5 + (5, 5, 5, 3)
    assert sorted(i["id"] for i in first.json()["value"] + items) == sorted(ids)


def test_a_full_last_page_is_followed_by_an_empty_page_with_the_delta_link(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    fill(served, mailbox, 10)
    items, _, pages = run_round(
        graph, "me/mailFolders/inbox/messages/delta", Prefer="odata.maxpagesize=5"
    )
    assert (len(items), pages) == (10, 3)


def test_the_default_page_is_small(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    fill(served, mailbox, 12)
    page = graph.get("me/mailFolders/inbox/messages/delta").json()
    assert len(page["value"]) == 10
    assert "@odata.nextLink" in page


def test_a_later_round_returns_latest_states_and_removals(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    emulator = served.emulator
    updated, moved, deleted, untouched = fill(served, mailbox, 4)
    _, delta_link, _ = run_round(graph, "me/mailFolders/inbox/messages/delta")
    emulator.update_message(mailbox.oid, updated, is_read=True, flag_status="flagged")
    emulator.update_message(mailbox.oid, updated, categories=["Blue"])
    emulator.move_message(mailbox.oid, moved, "archive")
    emulator.delete_message(mailbox.oid, deleted)
    created = emulator.add_message(mailbox.oid, subject="new").rest_id

    empty_start = graph.get(delta_link).json()
    items, _, _ = run_round(graph, empty_start["@odata.nextLink"])

    assert empty_start["value"] == []  # M2: an empty page can carry a nextLink
    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {updated, moved, deleted, created}
    assert by_id[updated]["isRead"] is True
    assert by_id[updated]["flag"] == {"flagStatus": "flagged"}
    assert by_id[updated]["categories"] == ["Blue"]
    assert by_id[moved]["@removed"] == {"reason": "changed"}
    assert by_id[deleted]["@removed"] == {"reason": "deleted"}
    assert by_id[created]["subject"] == "new"
    assert untouched not in by_id


def test_a_moved_message_arrives_in_the_other_folder_under_its_new_id(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    [message] = fill(served, mailbox, 1)
    _, archive_link, _ = run_round(graph, "me/mailFolders/archive/messages/delta")
    moved = served.emulator.move_message(mailbox.oid, message, "archive")

    items, _, _ = run_round(graph, archive_link)

    assert [i["id"] for i in items] == [moved.rest_id]
    assert moved.rest_id != message


def test_immutable_ids_survive_a_trip_out_and_back(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    immutable = {"Prefer": 'IdType="ImmutableId"'}
    [message] = fill(served, mailbox, 1)
    items, delta_link, _ = run_round(graph, "me/mailFolders/inbox/messages/delta", **immutable)
    [original_id] = [i["id"] for i in items]
    served.emulator.move_message(mailbox.oid, message, "archive")
    served.emulator.move_message(mailbox.oid, original_id, "inbox")

    items, _, _ = run_round(graph, delta_link, **immutable)

    assert [(i["id"], "@removed" in i) for i in items] == [(original_id, False)]


def test_links_carry_select_and_change_type(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    first, second, _ = fill(served, mailbox, 3)
    items, delta_link, _ = run_round(
        graph,
        "me/mailFolders/inbox/messages/delta?$select=subject,isRead&changeType=created",
        Prefer="odata.maxpagesize=2",
    )
    assert all(set(i) == {"@odata.etag", "id", "subject", "isRead"} for i in items)
    served.emulator.update_message(mailbox.oid, first, is_read=True)
    served.emulator.delete_message(mailbox.oid, second)
    new = served.emulator.add_message(mailbox.oid, subject="created later").rest_id

    items, _, _ = run_round(graph, delta_link)

    assert items == [
        {
            "@odata.etag": items[0]["@odata.etag"],
            "id": new,
            "subject": "created later",
            "isRead": False,
        }
    ]


def test_received_date_filter_limits_the_initial_round(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    now = datetime.fromtimestamp(clock(), UTC)
    served.emulator.add_message(mailbox.oid, subject="old", received_at=now - timedelta(days=30))
    recent = served.emulator.add_message(mailbox.oid, subject="recent", received_at=now)
    since = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    items, _, _ = run_round(
        graph, f"me/mailFolders/inbox/messages/delta?$filter=receivedDateTime ge {since}"
    )
    refused = graph.get("me/mailFolders/inbox/messages/delta?$filter=isRead eq false")

    assert [i["id"] for i in items] == [recent.rest_id]
    assert refused.status_code == 400


def test_dead_tokens_answer_410_sync_state_not_found(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    fill(served, mailbox, 3)
    first = graph.get(
        "me/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=2"}
    ).json()
    _, delta_link, _ = run_round(graph, first["@odata.nextLink"])
    tampered = delta_link[:-6] + ("A" if delta_link[-6] != "A" else "B") + delta_link[-5:]
    wrong_folder = delta_link.replace("/inbox/", "/archive/")

    served.emulator.expire_delta_tokens(mailbox.oid, "inbox")
    answers = [graph.get(url) for url in (delta_link, first["@odata.nextLink"])]
    answers += [graph.get(url) for url in (tampered, wrong_folder)]

    assert [a.status_code for a in answers] == [410, 410, 410, 410]
    assert answers[0].json()["error"]["code"] == "syncStateNotFound"
    fresh, _, _ = run_round(graph, "me/mailFolders/inbox/messages/delta")
    assert len(fresh) == 3


def test_tokens_expire_with_time(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    _, delta_link, _ = run_round(graph, "me/mailFolders/inbox/messages/delta")
    clock.advance(served.emulator.api.delta_tokens.lifetime + 1)
    fresh = served.token_for(mailbox.oid)

    answer = graph.get(delta_link, headers={"Authorization": f"Bearer {fresh}"})

    assert answer.status_code == 410


def test_folder_delta_reports_new_renamed_and_deleted_folders(
    served: ServedEmulator, mailbox: EmulatedMailbox, graph: httpx.Client
) -> None:
    emulator = served.emulator
    folders, delta_link, _ = run_round(graph, "me/mailFolders/delta")
    assert {"Inbox", "Archive", "Sent Items"} <= {f["displayName"] for f in folders}
    projects = emulator.create_folder(mailbox.oid, "Projects")
    child = emulator.create_folder(mailbox.oid, "Alpha", projects.id)
    doomed = emulator.create_folder(mailbox.oid, "Doomed")
    _, delta_link, _ = run_round(graph, delta_link)
    emulator.rename_folder(mailbox.oid, child.id, "Beta")
    emulator.delete_folder(mailbox.oid, doomed.id)

    changes, _, _ = run_round(graph, delta_link)

    by_id = {c["id"]: c for c in changes}
    assert by_id[child.id]["displayName"] == "Beta"
    assert by_id[child.id]["parentFolderId"] == projects.id
    assert by_id[doomed.id]["@removed"] == {"reason": "deleted"}


def test_unknown_select_is_a_bad_request(graph: httpx.Client) -> None:
    answer = graph.get("me/mailFolders/inbox/messages/delta?$select=subject,nonsense")
    assert answer.status_code == 400
    assert "nonsense" in answer.json()["error"]["message"]
