"""One folder's sync step: SELECT, what changed since the stored state, and new mail by UID.

    full sync page    SELECT; UID SEARCH UID <uid+1>:<pinned end>; fetch the first N
    changes           SELECT (QRESYNC (validity modseq 1:uid)) -> VANISHED (EARLIER) + FETCH FLAGS
                      or, without QRESYNC: UID FETCH 1:uid (FLAGS) (CHANGEDSINCE modseq) and
                      a count of UIDs <= uid that, when it fell, lists the folder (FolderResync)
                      or, without CONDSTORE either: every message's FLAGS
                      then UID SEARCH UID <uid+1>:* -> fetch the first N (UIDs have gaps, and
                      "n:*" also matches the highest UID when none is >= n: filtered)
    UIDVALIDITY moved every UID is void: list the folder (FolderResync with the new ids, so
                      apply drops the old ones) and fetch it again from UID 1, unless the
                      folder has reset too often lately (``FolderState.restart``)

Each step changes the ``FolderState`` it is given, which the adapter encodes into the next page
token or cursor. Nothing here sleeps, retries or keeps message content.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from sync.providers.errors import PermanentError
from sync.providers.imap_connection import CommandRefused, ImapConnection
from sync.providers.imap_fetch import fetch_messages, flags_record, provider_id, read_fetch
from sync.providers.imap_protocol import ProtocolError, as_int, as_text, expand, quote
from sync.providers.imap_state import FolderState
from sync.providers.records import FlagsRecord, FolderResync, MessageRecord

MAX_VANISHED = 100_000  # past this, listing the folder is cheaper than naming each UID


class FolderGone(PermanentError):
    """SELECT said NO: the folder was deleted or renamed since it was listed."""

    code = "FOLDER_GONE"


@dataclass
class Selected:
    """What SELECT reported about the folder."""

    validity: int = 0
    uidnext: int = 0
    modseq: int = 0
    exists: int = 0
    vanished: list[int] = field(default_factory=list)
    vanished_too_many: bool = False
    changed: dict[int, frozenset[str]] = field(default_factory=dict)


@dataclass
class Options:
    """How one sync step fetches, and which extensions it may use."""

    with_content: bool
    qresync: bool
    condstore: bool
    esearch: bool
    executor: Executor | None = None


@dataclass
class FolderChanges:
    """What one folder contributes to a batch."""

    upserts: list[MessageRecord] = field(default_factory=list)
    flag_updates: list[FlagsRecord] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    resync: FolderResync | None = None
    more: bool = False


async def select(
    connection: ImapConnection, folder: str, *, qresync: tuple[int, int, int] | None = None
) -> Selected:
    """SELECT ``folder``; with ``qresync=(validity, modseq, last uid)`` ask what changed."""
    command = f"SELECT {quote(folder)}"
    if qresync is not None:
        validity, modseq, last = qresync
        command += f" (QRESYNC ({validity} {modseq} 1:{last}))"
    elif "CONDSTORE" in connection.capabilities:
        command += " (CONDSTORE)"
    selected = Selected()
    connection.selected = None
    try:
        responses = await connection.run(command)
    except CommandRefused:
        raise FolderGone("the folder cannot be selected") from None
    for response in responses:
        if response.kind == "OK" and len(response.code) > 1:
            value = response.code[1]
            if response.code_name == "UIDVALIDITY":
                selected.validity = as_int(value)
            elif response.code_name == "UIDNEXT":
                selected.uidnext = as_int(value)
            elif response.code_name == "HIGHESTMODSEQ":
                selected.modseq = as_int(value)
        elif response.kind == "EXISTS" and response.number is not None:
            selected.exists = response.number
        elif response.kind == "VANISHED":
            try:
                selected.vanished.extend(expand(as_text(response.items[-1]), limit=MAX_VANISHED))
            except ProtocolError:
                selected.vanished_too_many = True
        elif response.kind == "FETCH":
            fetched = read_fetch(response)
            selected.changed[fetched.uid] = fetched.flags
    connection.selected = folder
    return selected


async def search_uids(
    connection: ImapConnection, low: int, high: int | None, *, esearch: bool
) -> list[int]:
    """UIDs of the selected folder in ``low:high`` (``high`` None: to the end), ascending."""
    span = f"{low}:{'*' if high is None else high}"
    command = f"UID SEARCH RETURN (ALL) UID {span}" if esearch else f"UID SEARCH UID {span}"
    found: list[int] = []
    for response in await connection.run(command):
        if response.kind == "SEARCH":
            found.extend(as_int(item) for item in response.items)
        elif response.kind == "ESEARCH":
            items = response.items
            for index in range(len(items) - 1):
                if isinstance(items[index], str) and as_text(items[index]).upper() == "ALL":
                    found.extend(expand(as_text(items[index + 1])))
    return sorted(u for u in set(found) if u >= low and (high is None or u <= high))


async def full_sync_step(
    connection: ImapConnection, state: FolderState, budget: int, options: Options
) -> FolderChanges:
    """The next up-to-``budget`` messages of a full sync of this folder."""
    changes = FolderChanges()
    selected = await select(connection, state.name)
    if selected.validity != state.validity:
        # Renumbered while the full sync ran: pages already stored carry dead ids.
        state.validity, state.uid, state.count = selected.validity, 0, 0
        state.end = max(selected.uidnext - 1, 0)
        state.modseq = selected.modseq
        changes.resync = _resync(
            state, await search_uids(connection, 1, None, esearch=options.esearch)
        )
    uids = await search_uids(connection, state.uid + 1, state.end, esearch=options.esearch)
    await _fetch_new(connection, state, uids, budget, options, changes, seen_up_to=state.end)
    return changes


async def changes_step(
    connection: ImapConnection, state: FolderState, budget: int, options: Options
) -> FolderChanges:
    """What changed in this folder since ``state``, and up to ``budget`` new messages."""
    changes = FolderChanges()
    use_qresync = options.qresync and state.modseq > 0 and state.uid > 0 and state.validity > 0
    selected = await select(
        connection,
        state.name,
        qresync=(state.validity, state.modseq, state.uid) if use_qresync else None,
    )
    if state.validity and selected.validity != state.validity:
        if not state.restart(selected.validity, int(time.time())):
            return changes  # reset too often lately: left alone until ``frozen_until``
        state.modseq = selected.modseq
        new = await search_uids(connection, 1, None, esearch=options.esearch)
        changes.resync = _resync(state, new)
        await _fetch_new(
            connection, state, new, budget, options, changes, seen_up_to=selected.uidnext - 1
        )
        return changes
    state.validity = selected.validity
    known = state.uid
    if use_qresync and not selected.vanished_too_many:
        gone = sorted({uid for uid in selected.vanished if uid <= known})
        changes.deletions = [provider_id(state.name, state.validity, uid) for uid in gone]
        state.count = max(state.count - len(gone), 0)
        changed = selected.changed
    else:
        changed = await _changed_flags(connection, state, options) if known else {}
        present = await _count_upto(connection, known, options) if known else 0
        if use_qresync or present != state.count:
            listing = await search_uids(connection, 1, None, esearch=options.esearch)
            changes.resync = _resync(state, listing)
        state.count = present
    changes.flag_updates = [
        flags_record(state.name, state.validity, uid, flags)
        for uid, flags in sorted(changed.items())
        if uid <= known
    ]
    if selected.modseq:
        state.modseq = selected.modseq
    new = await search_uids(connection, known + 1, None, esearch=options.esearch)
    await _fetch_new(
        connection, state, new, budget, options, changes, seen_up_to=selected.uidnext - 1
    )
    return changes


async def _fetch_new(
    connection: ImapConnection,
    state: FolderState,
    uids: Sequence[int],
    budget: int,
    options: Options,
    changes: FolderChanges,
    *,
    seen_up_to: int,
) -> None:
    """Fetch the first ``budget`` of ``uids``; when that is all of them, every UID up to
    ``seen_up_to`` (UIDNEXT-1 at SELECT, or the pinned end) has been handed over."""
    take = list(uids[: max(budget, 0)])
    changes.more = len(uids) > len(take)
    if take:
        changes.upserts = await fetch_messages(
            connection,
            state.name,
            state.validity,
            take,
            with_content=options.with_content,
            executor=options.executor,
        )
        state.uid = max(state.uid, take[-1])
        state.count += len(take)
    if not changes.more:
        state.uid = max(state.uid, seen_up_to)


def _resync(state: FolderState, uids: Sequence[int]) -> FolderResync:
    """Every message the folder holds now (``uids``), for apply to drop the rest."""
    return FolderResync(
        state.name, frozenset(provider_id(state.name, state.validity, uid) for uid in uids)
    )


async def _changed_flags(
    connection: ImapConnection, state: FolderState, options: Options
) -> dict[int, frozenset[str]]:
    command = f"UID FETCH 1:{state.uid} (UID FLAGS)"
    if options.condstore and state.modseq:
        command += f" (CHANGEDSINCE {state.modseq})"
    changed: dict[int, frozenset[str]] = {}
    for response in await connection.run(command):
        if response.kind == "FETCH":
            fetched = read_fetch(response)
            changed[fetched.uid] = fetched.flags
    return changed


async def _count_upto(connection: ImapConnection, last: int, options: Options) -> int:
    """How many messages have a UID <= ``last`` (only expunges lower it)."""
    if not options.esearch:
        return len(await search_uids(connection, 1, last, esearch=False))
    for response in await connection.run(f"UID SEARCH RETURN (COUNT) UID 1:{last}"):
        if response.kind == "ESEARCH":
            items = response.items
            for index in range(len(items) - 1):
                if isinstance(items[index], str) and as_text(items[index]).upper() == "COUNT":
                    return as_int(items[index + 1])
            return 0  # no COUNT: nothing matched
    return 0
