"""Emulated Gmail mailboxes: messages, threads, labels, drafts, history; one lock per mailbox.

Tests change a mailbox from their own thread (``deliver``, ``modify``, ``delete``, ...) while
uvicorn serves the same mailbox from another, so every public method of ``Mailbox`` takes the
mailbox's lock and returns immutable snapshots (``StoredMessage`` is frozen and replaced, never
changed in place).

Gmail semantics kept here (see shared/PROVIDERS.md, G1-G6):

- message ids are 16 hex digits and grow with ``internalDate``; ``threadId`` is the id of the
  thread's first message;
- incoming mail joins a thread when ``In-Reply-To``/``References`` name a message of the mailbox
  *and* the subjects match once "Re:"-style prefixes are stripped; a sent message joins a thread
  only when the caller names the ``threadId`` (and the same two conditions hold), as Gmail's
  sending guide requires;
- every change appends a history record (ids increase with gaps) and sets the message's
  ``historyId``; a label change updates a message and never creates one;
- listings are newest first, paged by opaque tokens that remember the last key served, so mail
  arriving between pages causes no duplicates; SPAM and TRASH stay hidden unless asked for.
"""

from __future__ import annotations

import bisect
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

from emulators.gmail_clock import Clock
from emulators.gmail_errors import GmailError
from emulators.gmail_history import Change, HistoryLog, HistoryType, MessageRef
from emulators.gmail_labels import Label, LabelRegistry
from emulators.gmail_mime import ParsedMessage, parse_message
from emulators.gmail_paging import Key, decode_token, encode_token, page
from emulators.gmail_query import parse_query
from emulators.gmail_records import (
    Draft,
    HistoryResult,
    LabelCounts,
    Page,
    Profile,
    StoredMessage,
    ThreadSummary,
    Watch,
)

DEFAULT_DELIVERY_LABELS: tuple[str, ...] = ("INBOX", "UNREAD", "CATEGORY_PERSONAL")
WATCH_LIFETIME_MS = 7 * 24 * 3600 * 1000
MAX_BATCH_IDS = 1000

_ID = re.compile(r"^[0-9a-f]{16}$")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|antw|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)
_SPAM_TRASH = frozenset({"SPAM", "TRASH"})

Notify = Callable[[str, str, int], None]


class Mailbox:
    """One user's mailbox. Every public method is atomic under the mailbox lock."""

    def __init__(
        self, email: str, rng: random.Random, clock: Clock, notify: Notify | None = None
    ) -> None:
        self.email = email
        self._rng = rng
        self._clock = clock
        self._notify = notify
        self._lock = threading.Lock()
        self._messages: dict[str, StoredMessage] = {}
        self._order: list[Key] = []  # ascending; listings walk it backwards
        self._threads: dict[str, list[str]] = {}
        self._by_rfc_id: dict[str, str] = {}  # RFC 822 Message-ID -> message id
        self._before_trash: dict[str, tuple[str, ...]] = {}
        self._drafts: dict[str, str] = {}  # draft id -> message id
        self._labels = LabelRegistry()
        self._history = HistoryLog(rng)
        self._watch: Watch | None = None

    # -- incoming and outgoing mail -------------------------------------------------------

    def deliver(
        self,
        raw: bytes,
        *,
        label_ids: Iterable[str] = DEFAULT_DELIVERY_LABELS,
        internal_date: int | None = None,
    ) -> StoredMessage:
        """Receive ``raw`` as mail from outside; ``internalDate`` defaults to its Date header."""
        parsed = parse_message(raw)
        labels = tuple(label_ids)
        with self._lock:
            self._labels.check(labels)
            when = internal_date or parsed.date_ms or self._now_ms()
            return self._add(raw, parsed, labels, when, self._thread_by_headers(parsed))

    def send(self, raw: bytes, *, thread_id: str | None = None) -> StoredMessage:
        """``messages.send``: store as SENT (and INBOX too when the user mails themself)."""
        with self._lock:
            raw, parsed = self._outgoing(raw)
            thread = self._thread_for_send(thread_id, parsed)
            return self._add(raw, parsed, self._sent_labels(parsed), self._now_ms(), thread)

    # -- label changes and deletion -------------------------------------------------------

    def modify(
        self, message_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> StoredMessage:
        add, remove = tuple(add), tuple(remove)
        with self._lock:
            self._check_label_change(add, remove)
            return self._relabel(self._get(message_id), add, remove)

    def batch_modify(
        self, message_ids: Iterable[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """``messages.batchModify``; well-formed ids of vanished messages are skipped."""
        ids, add, remove = _check_batch(message_ids), tuple(add), tuple(remove)
        with self._lock:
            self._check_label_change(add, remove)
            for message in [self._messages[i] for i in ids if i in self._messages]:
                self._relabel(message, add, remove)

    def trash(self, message_id: str) -> StoredMessage:
        with self._lock:
            message = self._get(message_id)
            leaving = tuple(lb for lb in message.label_ids if lb in ("INBOX", "SPAM"))
            if "TRASH" not in message.label_ids:
                self._before_trash[message_id] = leaving
            return self._relabel(message, ("TRASH",), leaving)

    def untrash(self, message_id: str) -> StoredMessage:
        with self._lock:
            message = self._get(message_id)
            restored = self._before_trash.pop(message_id, ())
            return self._relabel(message, restored, ("TRASH",))

    def delete(self, message_id: str) -> None:
        """Delete permanently (``messages.delete``): a ``messagesDeleted`` record."""
        with self._lock:
            self._remove(self._get(message_id))

    def batch_delete(self, message_ids: Iterable[str]) -> None:
        ids = _check_batch(message_ids)
        with self._lock:
            for message in [self._messages[i] for i in ids if i in self._messages]:
                self._remove(message)

    # -- drafts ---------------------------------------------------------------------------

    def create_draft(self, raw: bytes, *, thread_id: str | None = None) -> Draft:
        with self._lock:
            parsed = parse_message(raw)
            thread = self._thread_for_send(thread_id, parsed)
            message = self._add(raw, parsed, ("DRAFT",), self._now_ms(), thread)
            draft_id = f"r{self._rng.getrandbits(62)}"
            self._drafts[draft_id] = message.id
            return Draft(draft_id, message)

    def update_draft(self, draft_id: str, raw: bytes, *, thread_id: str | None = None) -> Draft:
        """Replace the draft's message: Gmail gives the new content a new message id."""
        with self._lock:
            old = self._draft_message(draft_id)
            parsed = parse_message(raw)
            thread = self._thread_for_send(thread_id, parsed) if thread_id else old.thread_id
            self._remove(old)
            message = self._add(raw, parsed, ("DRAFT",), self._now_ms(), thread)
            self._drafts[draft_id] = message.id
            return Draft(draft_id, message)

    def delete_draft(self, draft_id: str) -> None:
        with self._lock:
            self._remove(self._draft_message(draft_id))

    def send_draft(self, draft_id: str) -> StoredMessage:
        with self._lock:
            draft = self._draft_message(draft_id)
            raw, parsed = self._outgoing(draft.raw)
            self._remove(draft)
            return self._add(
                raw, parsed, self._sent_labels(parsed), self._now_ms(), draft.thread_id
            )

    def get_draft(self, draft_id: str) -> Draft:
        with self._lock:
            return Draft(draft_id, self._draft_message(draft_id))

    def list_drafts(self, *, page_token: str | None = None, max_results: int = 100) -> Page[Draft]:
        with self._lock:
            drafts = [Draft(d, self._messages[m]) for d, m in self._drafts.items()]
        drafts.sort(key=lambda d: d.message.key, reverse=True)
        return page(drafts, lambda d: d.message.key, page_token, max_results)

    # -- reading --------------------------------------------------------------------------

    def get(self, message_id: str) -> StoredMessage:
        with self._lock:
            return self._get(message_id)

    def list_messages(
        self,
        *,
        label_ids: Iterable[str] = (),
        include_spam_trash: bool = False,
        query: str | None = None,
        page_token: str | None = None,
        max_results: int = 100,
    ) -> Page[StoredMessage]:
        with self._lock:
            matching = list(self._matching(tuple(label_ids), include_spam_trash, query))
        return page(matching, lambda m: m.key, page_token, max_results)

    def list_threads(
        self,
        *,
        label_ids: Iterable[str] = (),
        include_spam_trash: bool = False,
        query: str | None = None,
        page_token: str | None = None,
        max_results: int = 100,
    ) -> Page[ThreadSummary]:
        """Threads with a matching message, ordered by their newest matching message."""
        with self._lock:
            newest: dict[str, Key] = {}
            for message in self._matching(tuple(label_ids), include_spam_trash, query):
                newest.setdefault(message.thread_id, message.key)
            listing = page(list(newest.items()), lambda kv: kv[1], page_token, max_results)
            threads = [self._summary(thread_id) for thread_id, _ in listing.items]
        return Page(threads, listing.next_page_token, listing.result_size_estimate)

    def thread(self, thread_id: str) -> list[StoredMessage]:
        """The thread's messages, oldest first."""
        with self._lock:
            if not _ID.match(thread_id):
                raise GmailError.invalid("Invalid id value")
            if thread_id not in self._threads:
                raise GmailError.not_found()
            return self._thread_messages(thread_id)

    def labels(self) -> list[Label]:
        with self._lock:
            return self._labels.all()

    def label(self, label_id: str) -> tuple[Label, LabelCounts]:
        with self._lock:
            label = self._labels.get(label_id)
            tagged = [m for m in self._messages.values() if label_id in m.label_ids]
            unread = [m for m in tagged if "UNREAD" in m.label_ids]
            counts = LabelCounts(
                len(tagged),
                len(unread),
                len({m.thread_id for m in tagged}),
                len({m.thread_id for m in unread}),
            )
            return label, counts

    def create_label(self, name: str) -> Label:
        with self._lock:
            return self._labels.create(name)

    def profile(self) -> Profile:
        with self._lock:
            return Profile(
                self.email, len(self._messages), len(self._threads), self._history.current_id
            )

    @property
    def history_id(self) -> int:
        with self._lock:
            return self._history.current_id

    def history(
        self,
        start_history_id: int,
        *,
        page_token: str | None = None,
        history_types: Iterable[HistoryType] = (),
        label_id: str | None = None,
        max_results: int = 100,
    ) -> HistoryResult:
        """One page of ``history.list``."""
        after = decode_token(page_token) if page_token else str(start_history_id)
        if not after.isdigit():
            raise GmailError.invalid("Invalid pageToken")
        with self._lock:
            found = self._history.page(
                start_history_id,
                int(after),
                types=frozenset(history_types),
                label_id=label_id,
                max_results=max_results,
            )
            next_token = None if found.next_after is None else encode_token(str(found.next_after))
            return HistoryResult(found.records, next_token, self._history.current_id)

    def expire_history(self, before_history_id: int | None = None) -> None:
        """Forget history so that start ids below ``before_history_id`` (default: all) 404."""
        with self._lock:
            self._history.expire(before_history_id)

    # -- push -----------------------------------------------------------------------------

    def watch(self, topic_name: str, label_ids: Iterable[str] = ()) -> Watch:
        labels = tuple(label_ids)
        if not topic_name:
            raise GmailError.invalid("Invalid topicName")
        with self._lock:
            self._labels.check(labels)
            expiration = self._now_ms() + WATCH_LIFETIME_MS
            self._watch = Watch(topic_name, labels, self._history.current_id, expiration)
            return self._watch

    def stop(self) -> None:
        with self._lock:
            self._watch = None

    @property
    def active_watch(self) -> Watch | None:
        with self._lock:
            return self._watch

    # -- internals (lock held) ------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _get(self, message_id: str) -> StoredMessage:
        if not _ID.match(message_id):
            raise GmailError.invalid("Invalid id value")
        message = self._messages.get(message_id)
        if message is None:
            raise GmailError.not_found()
        return message

    def _draft_message(self, draft_id: str) -> StoredMessage:
        message_id = self._drafts.get(draft_id)
        if message_id is None:
            raise GmailError.not_found()
        return self._messages[message_id]

    def _new_id(self, internal_date: int) -> str:
        # Gmail ids grow with time; the low bits keep same-millisecond ids apart.
        while True:
            candidate = f"{((internal_date << 20) | self._rng.getrandbits(20)) % 2**64:016x}"
            if candidate not in self._messages:
                return candidate

    def _add(
        self,
        raw: bytes,
        parsed: ParsedMessage,
        label_ids: tuple[str, ...],
        internal_date: int,
        thread_id: str | None,
    ) -> StoredMessage:
        message_id = self._new_id(internal_date)
        thread_id = thread_id or message_id
        labels = tuple(dict.fromkeys(label_ids))
        ref = MessageRef(message_id, thread_id, labels)
        history_id = self._record(ref, Change(HistoryType.MESSAGE_ADDED))
        message = StoredMessage(
            message_id, thread_id, labels, raw, internal_date, history_id, parsed
        )
        self._messages[message_id] = message
        bisect.insort(self._order, message.key)
        self._threads.setdefault(thread_id, []).append(message_id)
        if parsed.message_id:
            self._by_rfc_id[parsed.message_id] = message_id
        return message

    def _record(self, ref: MessageRef, *changes: Change) -> int:
        """Append to the history and tell the push channel if a watch covers the change."""
        history_id = self._history.append(ref, *changes)
        watch = self._watch
        if self._notify is None or watch is None or watch.expiration_ms <= self._now_ms():
            return history_id
        touched = set(ref.label_ids).union(*(change.label_ids for change in changes))
        if not watch.label_ids or touched.intersection(watch.label_ids):
            self._notify(self.email, watch.topic_name, history_id)
        return history_id

    def _remove(self, message: StoredMessage) -> None:
        self._record(message.ref(), Change(HistoryType.MESSAGE_DELETED))
        del self._messages[message.id]
        self._order.pop(bisect.bisect_left(self._order, message.key))
        siblings = self._threads[message.thread_id]
        siblings.remove(message.id)
        if not siblings:
            del self._threads[message.thread_id]
        if (
            message.parsed.message_id
            and self._by_rfc_id.get(message.parsed.message_id) == message.id
        ):
            del self._by_rfc_id[message.parsed.message_id]
        self._before_trash.pop(message.id, None)
        for draft_id in [d for d, m in self._drafts.items() if m == message.id]:
            del self._drafts[draft_id]

    def _check_label_change(self, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
        self._labels.check(add + remove, for_modify=True)
        if set(add) & set(remove):
            raise GmailError.invalid("Cannot add and remove the same label")

    def _relabel(
        self, message: StoredMessage, add: Iterable[str], remove: Iterable[str]
    ) -> StoredMessage:
        added = tuple(lb for lb in dict.fromkeys(add) if lb not in message.label_ids)
        removed = tuple(lb for lb in dict.fromkeys(remove) if lb in message.label_ids)
        if not added and not removed:
            return message  # Gmail writes no history for a change that changes nothing
        labels = tuple(lb for lb in message.label_ids if lb not in removed) + added
        changes = [Change(HistoryType.LABEL_ADDED, added)] if added else []
        changes += [Change(HistoryType.LABEL_REMOVED, removed)] if removed else []
        ref = MessageRef(message.id, message.thread_id, labels)
        updated = replace(message, label_ids=labels, history_id=self._record(ref, *changes))
        self._messages[message.id] = updated
        return updated

    def _thread_by_headers(self, parsed: ParsedMessage) -> str | None:
        for rfc_id in parsed.references:
            known = self._messages.get(self._by_rfc_id.get(rfc_id, ""))
            if known is not None and _same_subject(known.parsed.subject, parsed.subject):
                return known.thread_id
        return None

    def _thread_for_send(self, thread_id: str | None, parsed: ParsedMessage) -> str | None:
        if thread_id is None:
            return None
        if thread_id not in self._threads:
            raise GmailError.not_found()
        found = self._thread_by_headers(parsed)
        return thread_id if found == thread_id else None

    def _outgoing(self, raw: bytes) -> tuple[bytes, ParsedMessage]:
        """Check a message to send, adding the From, Date and Message-ID headers Gmail fills in
        when a client leaves them out."""
        parsed = parse_message(raw)
        if not parsed.recipients:
            raise GmailError.invalid("Recipient address required")
        missing = b""
        if parsed.header("From") is None:
            missing += f"From: {self.email}\r\n".encode()
        if parsed.header("Date") is None:
            now = datetime.fromtimestamp(self._clock(), UTC)
            missing += f"Date: {format_datetime(now)}\r\n".encode()
        if parsed.message_id is None:
            missing += f"Message-ID: <{self._rng.getrandbits(96):024x}@mail.gmail.com>\r\n".encode()
        if not missing:
            return raw, parsed
        return missing + raw, parse_message(missing + raw)

    def _sent_labels(self, parsed: ParsedMessage) -> tuple[str, ...]:
        # Mail the user sends to themself also arrives in their inbox.
        return ("SENT", "INBOX", "UNREAD") if self.email in parsed.recipients else ("SENT",)

    def _matching(
        self, label_ids: tuple[str, ...], include_spam_trash: bool, query: str | None
    ) -> Iterator[StoredMessage]:
        self._labels.check(label_ids)
        matches = parse_query(query or "", self._labels.by_name)
        hidden = frozenset() if include_spam_trash or matches.reveals_spam_trash else _SPAM_TRASH
        hidden -= set(label_ids)
        for key in reversed(self._order):
            message = self._messages[key[1]]
            if hidden.intersection(message.label_ids):
                continue
            if all(lb in message.label_ids for lb in label_ids) and matches(message):
                yield message

    def _thread_messages(self, thread_id: str) -> list[StoredMessage]:
        return sorted((self._messages[m] for m in self._threads[thread_id]), key=lambda m: m.key)

    def _summary(self, thread_id: str) -> ThreadSummary:
        messages = self._thread_messages(thread_id)
        history_id = max(m.history_id for m in messages)
        return ThreadSummary(thread_id, messages[-1].parsed.snippet, history_id)


class GmailStore:
    """All emulated mailboxes, created on first use and keyed by lower-cased address.

    ``notify(email, topic_name, history_id)`` is called for each change a watch covers.
    """

    def __init__(
        self, *, seed: int = 0, clock: Clock = time.time, notify: Notify | None = None
    ) -> None:
        self._seed = seed
        self._clock = clock
        self._notify = notify
        self._lock = threading.Lock()
        self._mailboxes: dict[str, Mailbox] = {}

    def mailbox(self, email: str) -> Mailbox:
        key = email.lower()
        with self._lock:
            if key not in self._mailboxes:
                # One generator per mailbox: ids stay reproducible whatever the other users do.
                rng = random.Random(f"{self._seed}:{key}")
                self._mailboxes[key] = Mailbox(key, rng, self._clock, self._notify)
            return self._mailboxes[key]


def _same_subject(first: str, second: str) -> bool:
    return _normalise_subject(first) == _normalise_subject(second)


def _normalise_subject(subject: str) -> str:
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


def _check_batch(message_ids: Iterable[str]) -> tuple[str, ...]:
    ids = tuple(message_ids)
    if len(ids) > MAX_BATCH_IDS:
        raise GmailError.invalid(f"Too many ids: at most {MAX_BATCH_IDS}")
    if not all(_ID.match(i) for i in ids):
        raise GmailError.invalid("Invalid id value")
    return ids
