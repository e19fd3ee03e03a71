"""Mailbox addresses as GraphQL shows them, from the JSON the cache stores.

The cache stores address lists as ``[{"name": ..., "email": ...}]`` (``sync.providers.records
.Address``); a missing name is an empty string.
"""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers.sql import as_json


@strawberry.type(description="A mailbox address and its display name (may be empty).")
class EmailAddress:
    name: str
    address: str


def addresses(value: Any) -> list[EmailAddress]:
    """An address JSON column as GraphQL objects."""
    return [
        EmailAddress(name=item.get("name") or "", address=item.get("email") or "")
        for item in as_json(value) or ()
    ]
