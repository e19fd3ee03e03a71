"""Gmail-style paging: opaque page tokens that remember the last key served.

Listings are newest first by (internalDate, id). A token names the last key of a page, and the
next page starts below it, so mail arriving between two pages shifts nothing and duplicates
nothing. The estimate counts every matching item, as ``resultSizeEstimate`` does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TypeVar

from emulators.gmail_errors import GmailError
from emulators.gmail_records import Page

T = TypeVar("T")
Key = tuple[int, str]


def encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError as exc:
        raise GmailError.invalid("Invalid pageToken") from exc


def page(items: list[T], key: Callable[[T], Key], token: str | None, size: int) -> Page[T]:
    """Items after the token's key (``items`` are newest first); the estimate counts them all."""
    after: Key | None = None
    if token:
        date, _, last_id = decode_token(token).partition(":")
        if not date.isdigit() or not last_id:
            raise GmailError.invalid("Invalid pageToken")
        after = (int(date), last_id)
    shown = [item for item in items if after is None or key(item) < after][: size + 1]
    next_token = None
    if len(shown) > size:
        shown.pop()
        date_ms, last = key(shown[-1])
        next_token = encode_token(f"{date_ms}:{last}")
    return Page(shown, next_token, len(items))
