"""Delta query for the Graph emulator: opaque tokens and the pages of one round (M1-M5).

A round is everything that changed in a window of the mailbox's change sequence:

    first call (no token)        since = 0,         upto = now   -> every item, as "created"
    $deltatoken (from deltaLink)  since = old upto, upto = now   -> a new round
    $skiptoken  (from nextLink)   same window, resumes after the last key it returned

Each page holds at most `page_size` entries, in a stable key order (so changes made while a
client pages cannot shift later pages). A full page always carries `@odata.nextLink`, even if
nothing is left (the next page is then empty and carries the deltaLink); the last page carries
`@odata.deltaLink`; never both. Tokens carry every option of the first call ($select, changeType,
$filter, page size), are HMAC-sealed, and answer 410 `syncStateNotFound` once expired, tampered
with, replayed on another folder or mailbox, or killed by `GraphStore.expire_delta_tokens`.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from emulators.graph_errors import GraphError, sync_state_not_found
from emulators.graph_json import RenderOptions, folder_json, message_json, removed_json
from emulators.graph_store import GraphStore, MailFolder
from emulators.graph_types import Clock, JSONObject

TokenKind = Literal["skip", "delta"]
CHANGE_TYPES = ("created", "updated", "deleted")
_RECEIVED_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$")


@dataclass(frozen=True)
class DeltaOptions:
    """The options of a round's first call, carried inside every link that follows."""

    page_size: int
    select: tuple[str, ...] | None = None
    change_type: str | None = None
    received_filter: tuple[str, str] | None = None
    """("ge" | "gt", ISO 8601 instant) from `$filter=receivedDateTime ge ...`."""


@dataclass(frozen=True)
class DeltaState:
    kind: TokenKind
    user_id: str
    scope: str
    """The folder id for message delta, `FOLDERS_DELTA_SCOPE` for the folder tree."""
    since: int
    upto: int
    after: tuple[int, int] | None
    generation: int
    issued_at: float
    options: DeltaOptions


@dataclass(frozen=True)
class DeltaEntry:
    key: tuple[int, int]
    render: Callable[[], JSONObject]
    """Rendering waits until the entry is on the page being served (rounds can be large)."""


@dataclass(frozen=True)
class DeltaPage:
    items: list[JSONObject]
    next_state: DeltaState
    """kind "skip": follow a nextLink; kind "delta": this page ends the round (deltaLink)."""


def parse_change_type(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in CHANGE_TYPES:
        raise GraphError(
            400, "ErrorInvalidUrlQuery", f"Invalid changeType '{value}': use {CHANGE_TYPES}."
        )
    return value


def parse_received_filter(value: str | None) -> tuple[str, str] | None:
    """Delta accepts only `receivedDateTime ge|gt <instant>` as `$filter` (M3)."""
    if value is None:
        return None
    match = _RECEIVED_FILTER.match(value)
    if match is None:
        raise GraphError(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes: delta supports only "
            "receivedDateTime ge/gt.",
        )
    try:
        datetime.fromisoformat(match.group(2))
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidUrlQueryFilter", f"Invalid DateTimeOffset '{match.group(2)}'."
        ) from None
    return match.group(1), match.group(2)


class DeltaTokens:
    """Seals round state into opaque tokens and checks them on the way back."""

    def __init__(self, secret: bytes, clock: Clock, lifetime: float) -> None:
        self._secret = secret
        self._clock = clock
        self.lifetime = lifetime

    def encode(self, state: DeltaState) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(asdict(state)).encode()).rstrip(b"=")
        seal = hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]
        return (payload + b"." + base64.urlsafe_b64encode(seal)).decode("ascii")

    def decode(
        self, token: str, *, kind: TokenKind, user_id: str, scope: str, generation: int
    ) -> DeltaState:
        payload, _, seal = token.encode("ascii", "replace").partition(b".")
        expected = base64.urlsafe_b64encode(
            hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]
        )
        if not hmac.compare_digest(seal, expected):
            raise sync_state_not_found()
        state = _state_from_json(json.loads(base64.urlsafe_b64decode(payload + b"==")))
        if (
            state.kind != kind
            or state.user_id != user_id
            or state.scope != scope
            or state.generation != generation
            or self._clock() - state.issued_at > self.lifetime
        ):
            raise sync_state_not_found()
        return state


def _state_from_json(raw: dict[str, Any]) -> DeltaState:
    options = raw["options"]
    return DeltaState(
        kind=raw["kind"],
        user_id=raw["user_id"],
        scope=raw["scope"],
        since=raw["since"],
        upto=raw["upto"],
        after=(int(raw["after"][0]), int(raw["after"][1])) if raw["after"] else None,
        generation=raw["generation"],
        issued_at=raw["issued_at"],
        options=DeltaOptions(
            page_size=options["page_size"],
            select=tuple(options["select"]) if options["select"] else None,
            change_type=options["change_type"],
            received_filter=(
                (str(options["received_filter"][0]), str(options["received_filter"][1]))
                if options["received_filter"]
                else None
            ),
        ),
    )


def page_of(entries: list[DeltaEntry], state: DeltaState, issued_at: float) -> DeltaPage:
    """Cut the page that follows ``state.after`` and say where the client goes next."""
    remaining = (e for e in entries if state.after is None or e.key > state.after)
    page = heapq.nsmallest(state.options.page_size, remaining, key=lambda e: e.key)
    if len(page) == state.options.page_size:
        following = replace(state, kind="skip", after=page[-1].key, issued_at=issued_at)
    else:
        following = replace(state, kind="delta", since=state.upto, after=None, issued_at=issued_at)
    return DeltaPage([e.render() for e in page], following)


def message_entries(
    store: GraphStore, state: DeltaState, render: RenderOptions
) -> list[DeltaEntry]:
    """The entries of a message-delta round over one folder, filtered by the round's options."""
    options = state.options
    present, removed = store.message_changes(
        state.user_id, state.scope, state.since, state.upto, render.id_type
    )
    entries: list[DeltaEntry] = []
    if options.change_type in (None, "created", "updated"):
        bound = _received_bound(options.received_filter)
        for message in present:
            if state.after is not None and (0, message.ordinal) <= state.after:
                continue  # served on an earlier page of this round
            is_new = state.since == 0 or message.entered_seq > state.since
            if options.change_type == "created" and not is_new:
                continue
            if options.change_type == "updated" and is_new:
                continue
            if bound is not None and not _received_ok(message.received_at, bound):
                continue
            entries.append(
                DeltaEntry(
                    (0, message.ordinal), partial(message_json, message, render, options.select)
                )
            )
    if options.change_type in (None, "deleted"):
        for tombstone in removed:
            body = removed_json(tombstone.id_for(render.id_type), tombstone.reason)
            entries.append(DeltaEntry((1, tombstone.seq), partial(dict, body)))
    return entries


def folder_entries(store: GraphStore, state: DeltaState) -> list[DeltaEntry]:
    present, removed = store.folder_changes(state.user_id, state.since, state.upto)
    entries = [
        DeltaEntry(
            (0, folder.ordinal),
            partial(_folder_body, store, state.user_id, folder, state.options.select),
        )
        for folder in present
    ]
    entries += [
        DeltaEntry((1, t.seq), partial(removed_json, t.folder_id, "deleted")) for t in removed
    ]
    return entries


def _folder_body(
    store: GraphStore, user_id: str, folder: MailFolder, select: tuple[str, ...] | None
) -> JSONObject:
    return folder_json(folder, store.folder_counts(user_id, folder.id), select)


def _received_bound(received_filter: tuple[str, str] | None) -> tuple[str, datetime] | None:
    if received_filter is None:
        return None
    operator, instant = received_filter
    moment = datetime.fromisoformat(instant)
    return operator, moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _received_ok(received_at: datetime, bound: tuple[str, datetime]) -> bool:
    operator, instant = bound
    return received_at >= instant if operator == "ge" else received_at > instant
