"""An owner sets how long and how much of an account's mail the cache keeps.

The purge job enforces ``retention_days``; ``cache_bodies`` decides whether sync and
fetch-through store bodies; ``fetch_uncached_bodies`` whether a body the cache lacks is fetched
from the provider on demand. Another owner's account is NotFound, like a missing one.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from app.models import Account
from app.services.errors import InvalidInput, NotFound
from app.types import AccountId, OwnerId

MAX_RETENTION_DAYS = 36_500


class Keep(Enum):
    """Leave this setting as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


async def set_cache_policy(
    owner_id: OwnerId,
    account_id: AccountId,
    *,
    retention_days: int | Literal[Keep.KEEP] | None = KEEP,
    cache_bodies: bool | None = None,
    fetch_uncached_bodies: bool | None = None,
) -> Account:
    """Change the given settings (None and KEEP leave one alone); returns the account."""
    account = await Account.get_or_none(id=account_id, owner_id=owner_id)
    if account is None:
        raise NotFound("account not found")
    fields = []
    if retention_days is not KEEP:
        if retention_days is not None and not 1 <= retention_days <= MAX_RETENTION_DAYS:
            raise InvalidInput(
                f"retentionDays must be between 1 and {MAX_RETENTION_DAYS}, or null to keep "
                "cached mail forever.",
                field="retentionDays",
            )
        account.retention_days = retention_days
        fields.append("retention_days")
    if cache_bodies is not None:
        account.cache_bodies = cache_bodies
        fields.append("cache_bodies")
    if fetch_uncached_bodies is not None:
        account.fetch_uncached_bodies = fetch_uncached_bodies
        fields.append("fetch_uncached_bodies")
    if fields:
        await account.save(update_fields=fields)
    return account
