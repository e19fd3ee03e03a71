"""Keyset pagination: opaque stable cursors, page arguments, and the SQL of a window.

Lists are ordered newest first by a sort key ``(instant, id)``; a cursor is that key of an
edge, so it stays valid while rows are added or removed around it (no OFFSET anywhere).
``after`` moves towards older rows, ``before`` towards newer ones. Keyset conditions are row
value comparisons, ``(date, id) < (?, ?)``, which both databases answer from the
``(account_id, date, id)`` index; OR chains would leave it (TARGETS.md).

A window is fetched with one row more than asked for: that row says whether another page
exists in the direction of travel and is then dropped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import strawberry

from app.services.errors import InvalidInput
from app.settings import Settings
from resolvers.ids import unpadded_base64url
from resolvers.sql import Statement

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SortKey = tuple[datetime, int]
T = TypeVar("T")


@strawberry.type(description="Where a page stands in its list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More edges follow (older rows). With `before`, true when `before` was given."
    )
    has_previous_page: bool = strawberry.field(
        description="More edges precede (newer rows). With `after`, true when `after` was given."
    )
    # Cursors are encoded when asked: a nested page (20 threads' messages) rarely asks.
    kind: strawberry.Private[str]
    first_key: strawberry.Private[SortKey | None]
    last_key: strawberry.Private[SortKey | None]

    @strawberry.field
    def start_cursor(self) -> str | None:
        return None if self.first_key is None else encode_cursor(self.kind, self.first_key)

    @strawberry.field
    def end_cursor(self) -> str | None:
        return None if self.last_key is None else encode_cursor(self.kind, self.last_key)


def encode_cursor(kind: str, key: SortKey) -> str:
    micros = (key[0] - _EPOCH) // _MICROSECOND
    return unpadded_base64url(f"{kind}:{micros}:{key[1]}".encode())


def decode_cursor(kind: str, cursor: str, field: str) -> SortKey:
    """The sort key in ``cursor``; BAD_USER_INPUT when it is not a cursor of this list."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, micros, number = text.split(":")
        if prefix != kind or len(cursor) > 64:
            raise ValueError(prefix)
        return _EPOCH + int(micros) * _MICROSECOND, int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidInput(f"`{field}` is not a cursor of this list.", field=field) from None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A validated page: how many rows, between which keys, and from which end."""

    limit: int
    after: SortKey | None = None
    before: SortKey | None = None
    from_end: bool = False

    @classmethod
    def from_arguments(
        cls,
        settings: Settings,
        kind: str,
        *,
        first: int | None,
        after: str | None,
        last: int | None,
        before: str | None,
    ) -> PageRequest:
        if first is not None and last is not None:
            raise InvalidInput("Give `first` or `last`, not both.", field="last")
        size, name = (last, "last") if last is not None else (first, "first")
        if size is None:
            size = settings.default_page_size
        elif not 0 <= size <= settings.max_page_size:
            raise InvalidInput(
                f"`{name}` must be between 0 and {settings.max_page_size}.", field=name
            )
        return cls(
            limit=size,
            after=None if after is None else decode_cursor(kind, after, "after"),
            before=None if before is None else decode_cursor(kind, before, "before"),
            from_end=last is not None,
        )

    def where(self, sql: Statement, columns: str) -> list[str]:
        """Keyset conditions on ``columns`` (e.g. ``"m.date, m.id"``)."""
        conditions = []
        if self.after is not None:
            conditions.append(f"({columns}) < ({sql(self.after[0])}, {sql(self.after[1])})")
        if self.before is not None:
            conditions.append(f"({columns}) > ({sql(self.before[0])}, {sql(self.before[1])})")
        return conditions

    def order_by(self, columns: str) -> str:
        """ORDER BY for fetching: newest first, or oldest first when paging from the end."""
        direction = " ASC" if self.from_end else " DESC"
        return ", ".join(column.strip() + direction for column in columns.split(","))

    @property
    def fetch(self) -> int:
        return self.limit + 1


@dataclass(frozen=True, slots=True)
class Window(Generic[T]):
    """The rows of one page, newest first, and whether more lie either side."""

    items: list[T]
    has_next: bool
    has_previous: bool


def window(page: PageRequest, fetched: Sequence[T]) -> Window[T]:
    """Cut the extra row off ``fetched`` (in fetch order) and put the page newest first."""
    more = len(fetched) > page.limit
    items = list(fetched[: page.limit])
    if page.from_end:
        items.reverse()
        return Window(items, has_next=page.before is not None, has_previous=more)
    return Window(items, has_next=more, has_previous=page.after is not None)


def page_request(
    settings: Settings,
    kind: str,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    return PageRequest.from_arguments(
        settings, kind, first=first, after=after, last=last, before=before
    )


def page_info(kind: str, keys: Sequence[SortKey], result: Window[T]) -> PageInfo:
    return PageInfo(
        has_next_page=result.has_next,
        has_previous_page=result.has_previous,
        kind=kind,
        first_key=keys[0] if keys else None,
        last_key=keys[-1] if keys else None,
    )
