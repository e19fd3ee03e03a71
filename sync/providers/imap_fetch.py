"""FETCH responses -> message and flag records: ids, threads, flags, and the fetch loop.

Identity. A message is (folder, UIDVALIDITY, UID) (PROVIDERS.md I1), and its provider id says
exactly that: ``"<uidvalidity>:<uid>:<folder>"`` (the folder last, so any name fits). It is what
deletions can be computed from (QRESYNC reports UIDs) and what ``fetch_content`` can find again
without any other state. The price: a message that moves to another folder, or whose folder
gets a new UIDVALIDITY, comes back under a new id. The adapter emits the removal and the new
record in the same batch, so the cache never holds both; every record carries
``message_id_header``, so apply can hand the new id to the cached row (see ``imap``).

Threads come from the headers (RFC 5322 References, then In-Reply-To): the thread id is the
root Message-ID as far as the headers tell. Without either, a reply-looking subject groups by
the normalised subject (weak, last resort); anything else is its own thread.

Fetching is ``BODY.PEEK[]`` (or ``BODY.PEEK[HEADER]`` without content), so nothing is marked
\\Seen, parsed by ``sync.providers.mime``. Parsing is the slow part (milliseconds per message,
against microseconds to receive it): it runs between reads so the event loop stays responsive,
or in ``executor`` (a process pool) when one is given. Bodies are handed to the caller, never
kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.parser import BytesHeaderParser

from sync.providers.errors import PermanentError
from sync.providers.imap_connection import ImapConnection
from sync.providers.imap_protocol import Item, Response, as_int, as_list, as_text, compress, pairs
from sync.providers.mime import make_snippet, parse_envelope, parse_message
from sync.providers.records import FlagsRecord, MessageContent, MessageRecord

FULL_ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
HEADER_ITEMS = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])"
MAX_ID_LENGTH = 200
UIDS_PER_COMMAND = 2000
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
)}  # fmt: skip
_INTERNALDATE = re.compile(r"\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|wg)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One FETCH response's data, before parsing the MIME."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime | None
    size: int
    raw: bytes | None
    modseq: int = 0


def provider_id(folder: str, validity: int, uid: int) -> str:
    return f"{validity}:{uid}:{folder}"


def parse_provider_id(value: str) -> tuple[str, int, int]:
    """(folder, UIDVALIDITY, UID); raises ``PermanentError`` for an id this adapter never made."""
    validity, _, rest = value.partition(":")
    uid, _, folder = rest.partition(":")
    if not validity.isdigit() or not uid.isdigit() or not folder:
        raise PermanentError("not an IMAP message id", code="NOT_FOUND")
    return folder, int(validity), int(uid)


def read_fetch(response: Response) -> Fetched:
    """The items of one ``* n FETCH (...)`` response."""
    data = pairs(as_list(response.items[0]))
    raw: Item = data.get("BODY[]", data.get("BODY[HEADER]"))
    return Fetched(
        uid=as_int(data["UID"]),
        flags=frozenset(as_text(flag) for flag in as_list(data.get("FLAGS") or [])),
        internal_date=_internal_date(as_text(data.get("INTERNALDATE"))),
        size=as_int(data["RFC822.SIZE"]) if "RFC822.SIZE" in data else 0,
        raw=raw if isinstance(raw, bytes) else None,
        modseq=as_int(as_list(data["MODSEQ"])[0]) if "MODSEQ" in data else 0,
    )


def message_record(
    folder: str, validity: int, fetched: Fetched, with_content: bool, keep_raw: bool = True
) -> MessageRecord:
    """The record of one fetched message (a module-level function: a process pool can run it;
    ``keep_raw=False`` leaves ``raw_mime`` out, for the caller who has the bytes already)."""
    own_id = provider_id(folder, validity, fetched.uid)
    raw = fetched.raw or b""
    content = None
    if with_content:
        parsed = parse_message(raw, fallback_date=fetched.internal_date)
        envelope, problems, attachments = parsed.envelope, parsed.parse_error, parsed.attachments
        content = MessageContent(
            text_body=parsed.text_body,
            html_body=parsed.html_body,
            headers=parsed.headers,
            raw_mime=raw if keep_raw else None,
        )
    else:
        # Only the header block: parsing it as a message would report the missing body parts.
        fields = [(name, str(value)) for name, value in _HEADER_PARSER.parsebytes(raw).raw_items()]
        envelope, problems = parse_envelope(fields, fallback_date=fetched.internal_date)
        attachments = ()
    return MessageRecord(
        provider_id=own_id,
        thread_provider_id=thread_id(
            envelope.references, envelope.in_reply_to, envelope.message_id, envelope.subject, own_id
        ),
        subject=envelope.subject,
        date=envelope.date or fetched.internal_date or _EPOCH,
        from_addresses=envelope.from_addresses,
        to_addresses=envelope.to_addresses,
        cc_addresses=envelope.cc_addresses,
        bcc_addresses=envelope.bcc_addresses,
        reply_to_addresses=envelope.reply_to_addresses,
        message_id_header=envelope.message_id,
        in_reply_to=envelope.in_reply_to,
        references=envelope.references,
        snippet=make_snippet(content.text_body, content.html_body) if content else "",
        size=fetched.size,
        unread="\\Seen" not in fetched.flags,
        starred="\\Flagged" in fetched.flags,
        draft="\\Draft" in fetched.flags,
        label_ids=(folder,),
        attachments=attachments,
        content=content,
        parse_error=problems,
        attachments_known=with_content,
    )


def flags_record(folder: str, validity: int, uid: int, flags: Iterable[str]) -> FlagsRecord:
    found = frozenset(flags)
    return FlagsRecord(
        provider_id=provider_id(folder, validity, uid),
        label_ids=(folder,),
        unread="\\Seen" not in found,
        starred="\\Flagged" in found,
    )


def thread_id(
    references: Sequence[str],
    in_reply_to: str | None,
    message_id: str | None,
    subject: str,
    fallback: str,
) -> str:
    """The root Message-ID of the conversation as far as the headers tell."""
    if references:
        return _bounded(references[0])
    if in_reply_to:
        return _bounded(in_reply_to)
    if _REPLY_PREFIX.match(subject):
        normalised = _SPACE.sub(" ", _REPLY_PREFIX.sub("", subject)).strip().casefold()
        return "subject:" + hashlib.sha256(normalised.encode()).hexdigest()[:32]
    return _bounded(message_id) if message_id else fallback


def _bounded(value: str) -> str:
    """Ids must fit the cache's 255-character columns; very long ones become a digest."""
    if len(value) <= MAX_ID_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _internal_date(text: str) -> datetime | None:
    match = _INTERNALDATE.match(text)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    offset = timedelta(hours=int(zone_h), minutes=int(zone_m)) * (-1 if sign == "-" else 1)
    try:
        moment = datetime(
            int(year), number, int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None
    return moment.astimezone(UTC)


async def fetch_messages(
    connection: ImapConnection,
    folder: str,
    validity: int,
    uids: Sequence[int],
    *,
    with_content: bool,
    executor: Executor | None = None,
) -> list[MessageRecord]:
    """Fetch and parse ``uids`` of the selected ``folder``, in UID order; gone ones are skipped."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[MessageRecord]] = []
    records: list[MessageRecord] = []
    items = FULL_ITEMS if with_content else HEADER_ITEMS
    ordered = sorted(uids)
    try:
        for start in range(0, len(ordered), UIDS_PER_COMMAND):
            chunk = ordered[start : start + UIDS_PER_COMMAND]
            wanted = set(chunk)
            async for response in connection.stream(f"UID FETCH {compress(chunk)} {items}"):
                if response.kind != "FETCH":
                    continue
                fetched = read_fetch(response)
                if fetched.uid not in wanted or fetched.raw is None:
                    continue  # an unsolicited FLAGS update of another message
                wanted.discard(fetched.uid)
                if executor is None:
                    records.append(message_record(folder, validity, fetched, with_content))
                    await asyncio.sleep(0)  # parsing takes milliseconds: let others run
                else:  # parsed while the next ones arrive
                    parse = _parse_in(executor, loop, folder, validity, fetched, with_content)
                    pending.append(asyncio.ensure_future(parse))
        records.extend(await asyncio.gather(*pending))
    except BaseException:
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise
    records.sort(key=lambda record: parse_provider_id(record.provider_id)[2])
    return records


async def _parse_in(
    executor: Executor,
    loop: asyncio.AbstractEventLoop,
    folder: str,
    validity: int,
    fetched: Fetched,
    with_content: bool,
) -> MessageRecord:
    """``message_record`` in ``executor``; the raw bytes are not sent back, only put back."""
    record = await loop.run_in_executor(
        executor, message_record, folder, validity, fetched, with_content, False
    )
    if record.content is None:
        return record
    return replace(record, content=replace(record.content, raw_mime=fetched.raw))
