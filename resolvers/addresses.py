"""Mailbox addresses as GraphQL shows them, from the JSON the cache stores.

The cache stores address lists as ``[{"name": ..., "email": ...}]`` (``sync.providers.records
.Address``); a missing name is an empty string.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import strawberry

from resolvers.sql import as_json

# Short address lists decoded from their JSON text, kept (with their GraphQL objects) for the
# texts seen last: 4 MiB at most.
PARSED_TEXTS = 4096
PARSED_TEXT_LIMIT = 1024


@strawberry.type(description="A mailbox address and its display name (may be empty).")
class EmailAddress:
    name: str
    address: str


def addresses(value: Any) -> list[EmailAddress]:
    """An address JSON column as GraphQL objects."""
    if isinstance(value, str) and len(value) <= PARSED_TEXT_LIMIT:
        return list(_parsed(value))
    return _built(as_json(value))


@lru_cache(maxsize=PARSED_TEXTS)
def _parsed(text: str) -> tuple[EmailAddress, ...]:
    # Lists repeat: the account's own address in nearly every message, the same senders.
    return tuple(_built(as_json(text)))


def _built(items: Any) -> list[EmailAddress]:
    return [
        EmailAddress(name=item.get("name") or "", address=item.get("email") or "")
        for item in items or ()
    ]
