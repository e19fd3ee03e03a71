"""emulators.gmail_store: Gmail mailbox semantics without HTTP in between."""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from emulators.corpus import MessageKind, make_mailbox, make_message
from emulators.gmail_clock import ManualClock
from emulators.gmail_errors import GmailError
from emulators.gmail_history import HistoryType
from emulators.gmail_store import GmailStore, Mailbox

ME = "me@example.com"


@pytest.fixture
def mailbox() -> Mailbox:
    return GmailStore(seed=5, clock=ManualClock(1_700_000_000.0)).mailbox(ME)


def message(
    rng: random.Random,
    *,
    subject: str | None = None,
    thread_of: bytes | None = None,
    sender: tuple[str, str] | None = None,
    recipients: list[tuple[str, str]] | None = None,
) -> bytes:
    return make_message(
        rng,
        kind=MessageKind.PLAIN,
        subject=subject,
        thread_of=thread_of,
        sender=sender,
        recipients=recipients,
    )


def test_ids_are_16_hex_digits_and_grow_with_internal_date(mailbox: Mailbox) -> None:
    delivered = [mailbox.deliver(raw) for raw in make_mailbox(1, 30)]
    assert all(len(m.id) == 16 and int(m.id, 16) >= 0 for m in delivered)
    by_date = sorted(delivered, key=lambda m: m.internal_date)
    assert [m.id for m in by_date] == sorted(m.id for m in delivered)


def test_replies_join_the_thread_only_when_the_subject_matches(mailbox: Mailbox) -> None:
    rng = random.Random(1)
    first = message(rng, subject="Budget")
    reply = message(rng, thread_of=first)
    hijack = message(rng, thread_of=first, subject="Something else entirely")
    a, b, c = (mailbox.deliver(raw) for raw in (first, reply, hijack))
    assert a.thread_id == a.id
    assert b.thread_id == a.id
    assert c.thread_id == c.id  # Gmail does not thread by headers alone
    assert [m.id for m in mailbox.thread(a.id)] == [a.id, b.id]


def test_sent_reply_joins_a_thread_only_when_the_thread_id_is_given(mailbox: Mailbox) -> None:
    rng = random.Random(2)
    first = mailbox.deliver(message(rng, subject="Plans", recipients=[("Me", ME)]))
    reply = message(rng, thread_of=first.raw, sender=("Me", ME))
    assert mailbox.send(reply).thread_id != first.thread_id
    assert mailbox.send(reply, thread_id=first.thread_id).thread_id == first.thread_id
    with pytest.raises(GmailError) as missing:
        mailbox.send(reply, thread_id="0123456789abcdef")
    assert missing.value.code == 404


def test_send_fills_in_missing_headers_and_mail_to_self_lands_in_the_inbox(
    mailbox: Mailbox,
) -> None:
    sent = mailbox.send(b"To: someone@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
    assert sent.label_ids == ("SENT",)
    assert sent.parsed.header("From") == ME
    assert sent.parsed.header("Date")
    assert sent.parsed.message_id
    to_self = mailbox.send(f"To: {ME}\r\nSubject: note\r\n\r\nremember\r\n".encode())
    assert set(to_self.label_ids) == {"SENT", "INBOX", "UNREAD"}
    with pytest.raises(GmailError, match="Recipient address required"):
        mailbox.send(b"Subject: nobody\r\n\r\nhello\r\n")


def test_history_ids_increase_with_gaps_and_records_say_what_changed(mailbox: Mailbox) -> None:
    rng = random.Random(3)
    start = mailbox.history_id
    ids = [mailbox.deliver(message(rng)).id for _ in range(30)]
    mailbox.modify(ids[0], add=["STARRED"], remove=["UNREAD"])
    mailbox.modify(ids[0], add=["STARRED"])  # no change, no record
    mailbox.trash(ids[1])
    mailbox.delete(ids[2])
    records = mailbox.history(start, max_results=500).records
    record_ids = [r.id for r in records]
    assert record_ids == sorted(record_ids)
    steps = {b - a for a, b in itertools.pairwise(record_ids)}
    assert steps <= set(range(1, 8))
    assert len(steps) > 1  # not contiguous
    assert [c.type for c in records[30].changes] == [
        HistoryType.LABEL_ADDED,
        HistoryType.LABEL_REMOVED,
    ]
    assert records[30].changes[0].label_ids == ("STARRED",)
    trash = records[31]
    assert trash.changes[0].label_ids == ("TRASH",)
    assert trash.changes[1].label_ids == ("INBOX",)
    assert records[32].changes[0].type is HistoryType.MESSAGE_DELETED
    assert len(records) == 33
    assert mailbox.get(ids[0]).history_id == records[30].id


def test_history_filters_by_type_and_label(mailbox: Mailbox) -> None:
    rng = random.Random(4)
    start = mailbox.history_id
    first = mailbox.deliver(message(rng))
    mailbox.deliver(message(rng), label_ids=["SPAM"])
    mailbox.modify(first.id, add=["STARRED"])
    added = mailbox.history(start, history_types=[HistoryType.MESSAGE_ADDED]).records
    assert len(added) == 2
    starred = mailbox.history(start, label_id="STARRED").records
    assert [r.message.id for r in starred] == [first.id]
    spam = mailbox.history(start, label_id="SPAM").records
    assert len(spam) == 1


def test_history_pages_follow_tokens_to_the_end(mailbox: Mailbox) -> None:
    rng = random.Random(5)
    start = mailbox.history_id
    for _ in range(25):
        mailbox.deliver(message(rng))
    seen, token = [], None
    while True:
        page = mailbox.history(start, page_token=token, max_results=10)
        seen += [r.id for r in page.records]
        token = page.next_page_token
        if token is None:
            break
    assert len(seen) == 25
    assert seen == sorted(set(seen))
    assert page.history_id == mailbox.history_id


def test_expired_history_answers_404_and_recent_start_ids_still_work(mailbox: Mailbox) -> None:
    rng = random.Random(6)
    old = mailbox.history_id
    mailbox.deliver(message(rng))
    middle = mailbox.history_id
    mailbox.deliver(message(rng))
    mailbox.expire_history(middle)
    with pytest.raises(GmailError) as expired:
        mailbox.history(old)
    assert expired.value.code == 404
    assert expired.value.body()["error"]["message"] == "Requested entity was not found."
    assert len(mailbox.history(middle).records) == 1
    mailbox.expire_history()
    with pytest.raises(GmailError):
        mailbox.history(middle)
    assert mailbox.history(mailbox.history_id).records == []


def test_listing_is_newest_first_and_arrivals_between_pages_cause_no_duplicates(
    mailbox: Mailbox,
) -> None:
    for raw in make_mailbox(2, 30):
        mailbox.deliver(raw)
    first = mailbox.list_messages(max_results=10)
    assert first.result_size_estimate == 30
    dates = [m.internal_date for m in first.items]
    assert dates == sorted(dates, reverse=True)
    for raw in make_mailbox(3, 5):  # newer mail arrives while the client pages
        mailbox.deliver(raw, internal_date=2_000_000_000_000)
    seen = [m.id for m in first.items]
    token = first.next_page_token
    while token:
        page = mailbox.list_messages(max_results=10, page_token=token)
        seen += [m.id for m in page.items]
        token = page.next_page_token
    assert len(seen) == len(set(seen)) == 30


def test_spam_and_trash_are_hidden_unless_asked_for(mailbox: Mailbox) -> None:
    rng = random.Random(7)
    spam = mailbox.deliver(message(rng), label_ids=["SPAM"])
    kept = mailbox.deliver(message(rng))
    trashed = mailbox.trash(mailbox.deliver(message(rng)).id)
    assert [m.id for m in mailbox.list_messages().items] == [kept.id]
    assert len(mailbox.list_messages(include_spam_trash=True).items) == 3
    assert [m.id for m in mailbox.list_messages(label_ids=["SPAM"]).items] == [spam.id]
    assert [m.id for m in mailbox.list_messages(query="in:trash").items] == [trashed.id]
    restored = mailbox.untrash(trashed.id)
    assert "INBOX" in restored.label_ids
    assert "TRASH" not in restored.label_ids


def test_modify_rejects_unknown_and_system_only_labels(mailbox: Mailbox) -> None:
    delivered = mailbox.deliver(message(random.Random(8)))
    for bad in (["Label_99"], ["SENT"], ["DRAFT"]):
        with pytest.raises(GmailError) as invalid:
            mailbox.modify(delivered.id, add=bad)
        assert invalid.value.code == 400
    label = mailbox.create_label("Receipts")
    assert label.id == "Label_1"
    assert mailbox.modify(delivered.id, add=[label.id]).label_ids[-1] == "Label_1"
    _, counts = mailbox.label(label.id)
    assert (counts.messages_total, counts.messages_unread) == (1, 1)


def test_drafts_replace_their_message_and_send_into_sent(mailbox: Mailbox) -> None:
    start = mailbox.history_id
    draft = mailbox.create_draft(b"To: x@example.org\r\nSubject: d\r\n\r\nv1\r\n")
    assert draft.message.label_ids == ("DRAFT",)
    updated = mailbox.update_draft(draft.id, b"To: x@example.org\r\nSubject: d\r\n\r\nv2\r\n")
    assert updated.id == draft.id
    assert updated.message.id != draft.message.id
    assert [d.id for d in mailbox.list_drafts().items] == [draft.id]
    sent = mailbox.send_draft(draft.id)
    assert sent.label_ids == ("SENT",)
    assert mailbox.list_drafts().items == []
    kinds = [r.changes[0].type for r in mailbox.history(start).records]
    assert kinds == [
        HistoryType.MESSAGE_ADDED,
        HistoryType.MESSAGE_DELETED,
        HistoryType.MESSAGE_ADDED,
        HistoryType.MESSAGE_DELETED,
        HistoryType.MESSAGE_ADDED,
    ]


def test_ids_are_reproducible_for_a_seed() -> None:
    def ids(seed: int) -> list[str]:
        box = GmailStore(seed=seed, clock=ManualClock(0.0)).mailbox(ME)
        return [box.deliver(raw).id for raw in make_mailbox(1, 5)]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)


def test_concurrent_deliveries_and_reads_keep_the_mailbox_consistent(mailbox: Mailbox) -> None:
    mail = make_mailbox(9, 80)
    start = mailbox.history_id

    def deliver(chunk: list[bytes]) -> None:
        for raw in chunk:
            mailbox.deliver(raw)
            mailbox.list_messages(max_results=5)

    workers = [threading.Thread(target=deliver, args=(mail[i::4],)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert mailbox.profile().messages_total == 80
    records = mailbox.history(start, max_results=500).records
    assert len(records) == 80
    assert len({r.id for r in records}) == 80
