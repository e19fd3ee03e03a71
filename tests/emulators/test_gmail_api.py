"""emulators.gmail_api over real HTTP: the Gmail API v1 as a client sees it."""

from __future__ import annotations

import base64
import itertools
import random
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from typing import Any

import httpx
import pytest

from emulators.corpus import Defect, MessageKind, make_broken_message, make_mailbox, make_message
from emulators.gmail_clock import ManualClock
from emulators.gmail_emulator import GoogleEmulator
from emulators.gmail_gateway import SCOPE_FULL, SCOPE_METADATA, SCOPE_READONLY
from emulators.runner import serve_in_thread

ME = "alice@example.com"
CLIENT = "client-1"


# One TLS context for all clients: building one per client costs ~50 ms of CA loading.
TLS = ssl.create_default_context()


@dataclass
class Env:
    emulator: GoogleEmulator
    base_url: str

    def client_with(self, scopes: list[str]) -> httpx.Client:
        """A client based at /gmail/v1/users/me with a token for ``scopes``."""
        token = self.emulator.identity.issue_tokens(ME, CLIENT, scopes).access_token
        return httpx.Client(
            base_url=f"{self.base_url}/gmail/v1/users/me",
            headers={"Authorization": f"Bearer {token}"},
            verify=TLS,
        )

    @cached_property
    def api(self) -> httpx.Client:
        return self.client_with([SCOPE_FULL])


START = 1_700_000_000.0


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[GoogleEmulator, ManualClock, str]]:
    clock = ManualClock(START)
    emulator = GoogleEmulator(seed=3, clock=clock)
    with serve_in_thread(emulator.app) as server:
        yield emulator, clock, server.base_url


@pytest.fixture
def env(served: tuple[GoogleEmulator, ManualClock, str]) -> Iterator[Env]:
    emulator, clock, base_url = served
    emulator.reset()
    clock.advance(START - clock())
    emulator.register_client(CLIENT, "secret", ["http://127.0.0.1/callback"])
    emulator.add_user(ME)
    env = Env(emulator, base_url)
    with env.api:
        yield env


def b64decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data)  # Gmail pads, so the stdlib decodes it as it is


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def mixed_message(env: Env, seed: int = 1) -> tuple[str, bytes]:
    raw = make_message(random.Random(seed), kind=MessageKind.MIXED)
    return env.emulator.mailbox(ME).deliver(raw).id, raw


def test_profile(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=1, count=12)
    profile = env.api.get("/profile").json()
    mailbox = env.emulator.mailbox(ME)
    assert profile["emailAddress"] == ME
    assert profile["messagesTotal"] == 12
    assert profile["historyId"] == str(mailbox.history_id)
    assert profile["threadsTotal"] == mailbox.profile().threads_total


def test_list_pages_with_default_and_capped_page_sizes(env: Env) -> None:
    env.emulator.load_corpus(ME, seed=1, count=130)
    first = env.api.get("/messages").json()
    assert len(first["messages"]) == 100
    assert first["resultSizeEstimate"] == 130
    assert set(first["messages"][0]) == {"id", "threadId"}
    second = env.api.get("/messages", params={"pageToken": first["nextPageToken"]}).json()
    assert len(second["messages"]) == 30
    assert "nextPageToken" not in second
    ids = [m["id"] for m in first["messages"] + second["messages"]]
    assert len(set(ids)) == 130
    capped = env.api.get("/messages", params={"maxResults": 1000}).json()
    assert len(capped["messages"]) == 130
    assert env.api.get("/messages", params={"maxResults": 0}).status_code == 400
    assert env.api.get("/messages", params={"pageToken": "%%%"}).status_code == 400


def test_list_filters_by_label_and_query(env: Env) -> None:
    mailbox = env.emulator.mailbox(ME)
    delivered = env.emulator.load_corpus(ME, seed=2, count=20)
    mailbox.modify(delivered[3].id, add=["STARRED"])
    starred = env.api.get("/messages", params={"labelIds": ["INBOX", "STARRED"]}).json()
    assert [m["id"] for m in starred["messages"]] == [delivered[3].id]
    unread = env.api.get("/messages", params={"q": "is:unread"}).json()
    assert unread["resultSizeEstimate"] == 20
    empty = env.api.get("/messages", params={"labelIds": "TRASH"}).json()
    assert "messages" not in empty  # Gmail leaves empty lists out
    assert empty["resultSizeEstimate"] == 0


def test_get_minimal_and_metadata(env: Env) -> None:
    message_id, raw = mixed_message(env)
    minimal = env.api.get(f"/messages/{message_id}", params={"format": "minimal"}).json()
    assert set(minimal) == {
        "id",
        "threadId",
        "labelIds",
        "snippet",
        "sizeEstimate",
        "historyId",
        "internalDate",
    }
    assert minimal["sizeEstimate"] == len(raw)
    assert minimal["internalDate"].isdigit()
    metadata = env.api.get(
        f"/messages/{message_id}",
        params={"format": "metadata", "metadataHeaders": ["subject", "From"]},
    ).json()
    names = [h["name"] for h in metadata["payload"]["headers"]]
    assert sorted(names) == ["From", "Subject"]
    subject = next(h["value"] for h in metadata["payload"]["headers"] if h["name"] == "Subject")
    assert subject == str(parse(raw)["Subject"])
    assert "parts" not in metadata["payload"]


def test_get_full_gives_the_mime_tree_with_decoded_bodies(env: Env) -> None:
    message_id, raw = mixed_message(env)
    original = parse(raw)
    full = env.api.get(f"/messages/{message_id}").json()  # format=full is the default
    payload = full["payload"]
    assert payload["partId"] == ""
    assert payload["mimeType"] == "multipart/mixed"
    assert payload["body"] == {"size": 0}
    alternative = payload["parts"][0]
    text = alternative["parts"][0]
    assert (text["partId"], text["mimeType"]) == ("0.0", "text/plain")
    plain = original.get_body(preferencelist=("plain",))
    assert plain is not None
    assert b64decode(text["body"]["data"]).decode() == plain.get_content()
    assert text["body"]["size"] == len(b64decode(text["body"]["data"]))
    attachments = payload["parts"][1:]
    assert attachments
    for part in attachments:
        assert part["filename"]
        assert "data" not in part["body"]
        assert part["body"]["attachmentId"]


def test_get_raw_is_the_exact_message(env: Env) -> None:
    message_id, raw = mixed_message(env)
    body = env.api.get(f"/messages/{message_id}", params={"format": "raw"}).json()
    assert b64decode(body["raw"]) == raw


def test_attachments_get_returns_the_attachment_bytes(env: Env) -> None:
    message_id, raw = mixed_message(env, seed=4)
    expected = {a.get_filename(): a.get_payload(decode=True) for a in parse(raw).iter_attachments()}
    first = env.api.get(f"/messages/{message_id}").json()["payload"]["parts"][1:]
    second = env.api.get(f"/messages/{message_id}").json()["payload"]["parts"][1:]
    for part, again in zip(first, second, strict=True):
        # Like Gmail's, attachment ids differ between fetches, and each one works.
        assert part["body"]["attachmentId"] != again["body"]["attachmentId"]
        for attachment_id in (part["body"]["attachmentId"], again["body"]["attachmentId"]):
            got = env.api.get(f"/messages/{message_id}/attachments/{attachment_id}").json()
            assert b64decode(got["data"]) == expected[part["filename"]]
            assert got["size"] == len(expected[part["filename"]] or b"")
    other_id, _ = mixed_message(env, seed=5)
    attachment_id = first[0]["body"]["attachmentId"]
    wrong = env.api.get(f"/messages/{other_id}/attachments/{attachment_id}")
    assert wrong.status_code == 400


def test_unknown_and_malformed_ids(env: Env) -> None:
    missing = env.api.get("/messages/0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error"]["errors"][0]["reason"] == "notFound"
    assert env.api.get("/messages/not-an-id").status_code == 400
    assert env.api.get("/messages/0123456789abcdef", params={"format": "nope"}).status_code == 400


@pytest.mark.parametrize("defect", list(Defect))
def test_broken_mail_is_served_in_every_format(env: Env, defect: Defect) -> None:
    raw = make_broken_message(random.Random(2), defect)
    message_id = env.emulator.mailbox(ME).deliver(raw).id
    for fmt in ("minimal", "metadata", "full", "raw"):
        response = env.api.get(f"/messages/{message_id}", params={"format": fmt})
        assert response.status_code == 200, fmt


def test_modify_trash_untrash_delete_and_their_history(env: Env) -> None:
    delivered = env.emulator.load_corpus(ME, seed=3, count=3)
    start = env.api.get("/profile").json()["historyId"]
    first, second, third = (m.id for m in delivered)
    modified = env.api.post(
        f"/messages/{first}/modify",
        json={"addLabelIds": ["STARRED"], "removeLabelIds": ["UNREAD"]},
    ).json()
    assert set(modified["labelIds"]) == {"INBOX", "CATEGORY_PERSONAL", "STARRED"}
    assert env.api.post(f"/messages/{second}/trash").json()["labelIds"].count("TRASH") == 1
    assert "TRASH" not in env.api.post(f"/messages/{second}/untrash").json()["labelIds"]
    assert env.api.delete(f"/messages/{third}").status_code == 204
    assert env.api.get(f"/messages/{third}").status_code == 404
    history = env.api.get("/history", params={"startHistoryId": start}).json()
    records = history["history"]
    assert [list(r)[2:] for r in records] == [
        ["labelsAdded", "labelsRemoved"],
        ["labelsAdded", "labelsRemoved"],
        ["labelsAdded", "labelsRemoved"],
        ["messagesDeleted"],
    ]
    assert records[0]["labelsAdded"][0]["labelIds"] == ["STARRED"]
    assert records[0]["messages"] == [{"id": first, "threadId": delivered[0].thread_id}]
    assert records[3]["messagesDeleted"][0]["message"]["id"] == third
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids)
    assert history["historyId"] == env.api.get("/profile").json()["historyId"]
    only_deleted = env.api.get(
        "/history", params={"startHistoryId": start, "historyTypes": "messageDeleted"}
    ).json()
    assert [list(r)[2:] for r in only_deleted["history"]] == [["messagesDeleted"]]


def test_batch_modify_and_delete(env: Env) -> None:
    ids = [m.id for m in env.emulator.load_corpus(ME, seed=4, count=4)]
    response = env.api.post(
        "/messages/batchModify", json={"ids": ids[:3], "removeLabelIds": ["INBOX"]}
    )
    assert response.status_code == 204
    assert env.api.get("/messages", params={"labelIds": "INBOX"}).json()["resultSizeEstimate"] == 1
    assert env.api.post("/messages/batchDelete", json={"ids": ids}).status_code == 204
    assert env.api.get("/profile").json()["messagesTotal"] == 0
    bad = env.api.post("/messages/batchModify", json={"ids": ids, "addLabelIds": ["Label_404"]})
    assert bad.status_code == 400


def test_history_pages_and_expiry(env: Env) -> None:
    start = env.api.get("/profile").json()["historyId"]
    for raw in make_mailbox(5, 12):
        env.emulator.mailbox(ME).deliver(raw)
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"startHistoryId": start, "maxResults": 5}
        if token:
            params["pageToken"] = token
        page = env.api.get("/history", params=params).json()
        seen += [r["id"] for r in page["history"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == 12
    assert all(int(a) < int(b) for a, b in itertools.pairwise(seen))
    assert any(int(b) - int(a) > 1 for a, b in itertools.pairwise(seen))
    env.emulator.mailbox(ME).expire_history()
    expired = env.api.get("/history", params={"startHistoryId": start})
    assert expired.status_code == 404
    assert expired.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "errors": [
                {
                    "message": "Requested entity was not found.",
                    "domain": "global",
                    "reason": "notFound",
                }
            ],
            "status": "NOT_FOUND",
        }
    }
    assert env.api.get("/history").status_code == 400  # startHistoryId is required


def test_labels_and_threads(env: Env) -> None:
    delivered = env.emulator.load_corpus(ME, seed=6, count=40)
    labels = env.api.get("/labels").json()["labels"]
    ids = {label["id"] for label in labels}
    assert {"INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "UNREAD", "STARRED", "IMPORTANT"} <= ids
    assert "CATEGORY_PROMOTIONS" in ids
    created = env.api.post("/labels", json={"name": "Receipts"}).json()
    assert created["id"] == "Label_1"
    assert created["type"] == "user"
    inbox = env.api.get("/labels/INBOX").json()
    assert inbox["messagesTotal"] == 40
    assert inbox["messagesUnread"] == 40
    threads = env.api.get("/threads", params={"maxResults": 500}).json()["threads"]
    assert len(threads) == len({m.thread_id for m in delivered})
    biggest = max(threads, key=lambda t: sum(m.thread_id == t["id"] for m in delivered))
    thread = env.api.get(f"/threads/{biggest['id']}", params={"format": "metadata"}).json()
    assert len(thread["messages"]) > 1
    dates = [int(m["internalDate"]) for m in thread["messages"]]
    assert dates == sorted(dates)
    assert thread["historyId"] == str(max(int(m["historyId"]) for m in thread["messages"]))


def test_send_and_drafts(env: Env) -> None:
    raw = b"To: bob@example.org\r\nSubject: Hello\r\n\r\nHi Bob\r\n"
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    sent = env.api.post("/messages/send", json={"raw": encoded}).json()
    assert sent["labelIds"] == ["SENT"]
    stored = env.api.get(f"/messages/{sent['id']}", params={"format": "raw"}).json()
    assert b64decode(stored["raw"]).endswith(raw)
    assert env.api.post("/messages/send", json={}).status_code == 400
    draft = env.api.post("/drafts", json={"message": {"raw": encoded}}).json()
    assert draft["id"].startswith("r")
    assert draft["message"]["labelIds"] == ["DRAFT"]
    listed = env.api.get("/drafts").json()["drafts"]
    assert listed == [{"id": draft["id"], "message": draft["message"] | {}} | listed[0]]
    got = env.api.get(f"/drafts/{draft['id']}").json()
    assert got["message"]["payload"]["mimeType"] == "text/plain"
    updated = env.api.put(f"/drafts/{draft['id']}", json={"message": {"raw": encoded}}).json()
    assert updated["message"]["id"] != draft["message"]["id"]
    sent_draft = env.api.post("/drafts/send", json={"id": draft["id"]}).json()
    assert sent_draft["labelIds"] == ["SENT"]
    assert env.api.get(f"/drafts/{draft['id']}").status_code == 404


def test_watch_and_stop(env: Env) -> None:
    watch = env.api.post(
        "/watch", json={"topicName": "projects/p/topics/t", "labelIds": ["INBOX"]}
    ).json()
    assert watch["historyId"] == env.api.get("/profile").json()["historyId"]
    assert int(watch["expiration"]) == 1_700_000_000_000 + 7 * 24 * 3600 * 1000
    assert env.api.post("/watch", json={}).status_code == 400
    assert env.api.post("/stop").status_code == 204
    assert env.emulator.mailbox(ME).active_watch is None


def test_requests_without_a_live_token_answer_401(env: Env) -> None:
    url = f"{env.base_url}/gmail/v1/users/me/profile"
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eA=="}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["status"] == "UNAUTHENTICATED"
        assert error["errors"][0]["reason"] == "authError"
        assert "invalid_token" in response.headers["www-authenticate"]
    env.emulator.identity.expire_access_tokens(ME)
    assert env.api.get("/profile").status_code == 401


def test_scopes_limit_what_a_token_may_do(env: Env) -> None:
    message_id, _ = mixed_message(env)
    with env.client_with([SCOPE_READONLY]) as readonly:
        assert readonly.get(f"/messages/{message_id}").status_code == 200
        denied = readonly.post(f"/messages/{message_id}/modify", json={"addLabelIds": ["STARRED"]})
        assert denied.status_code == 403
        assert denied.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    with env.client_with([SCOPE_METADATA]) as metadata:
        assert metadata.get(f"/messages/{message_id}?format=metadata").status_code == 200
        assert metadata.get(f"/messages/{message_id}?format=full").status_code == 403
        assert metadata.get("/messages", params={"q": "hello"}).status_code == 403


def test_user_id_must_be_me_or_the_token_owner(env: Env) -> None:
    base = f"{env.base_url}/gmail/v1/users"
    headers = dict(env.api.headers)
    assert httpx.get(f"{base}/{ME}/profile", headers=headers).status_code == 200
    other = httpx.get(f"{base}/bob@example.org/profile", headers=headers)
    assert other.status_code == 403
    assert other.json()["error"]["message"] == "Delegation denied for bob@example.org"
