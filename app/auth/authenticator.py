"""Token -> principal: SHA-256 digest lookup, expiry, revocation, with a short-lived cache.

The cache keeps a principal for ``cache_ttl`` seconds so a busy frontend does not cost a query
per request. Revocation clears the entry at once in this process; other processes are told by
an event and call ``invalidate_*`` (and the TTL bounds staleness if an event is lost). Expiry
is checked on every call against the project clock, cached or not.

Every failure (missing, malformed, unknown, expired, revoked, terminated owner) returns None:
callers answer all of them the same way, so nothing can be learned from the difference.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import orjson
from tortoise import connections

from app import clock
from app.auth.principal import Principal
from app.auth.tokens import is_well_formed, token_digest
from app.types import AccountId, Action, OwnerId, TokenId

_LOOKUP_SQL = (
    "SELECT t.id, t.owner_id, t.digest, t.actions, t.account_ids, t.expires_at, t.revoked_at, "
    "o.terminated_at FROM api_tokens t JOIN owners o ON o.id = t.owner_id WHERE t.digest = {}"
)


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    expires_at: datetime | None
    cached_until: float


def _as_list(value: object) -> list[object] | None:
    if value is None:
        return None
    if isinstance(value, (bytes, str)):
        decoded = orjson.loads(value)
        return None if decoded is None else list(decoded)
    if isinstance(value, list):
        return value
    raise TypeError("unexpected JSON column value")


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise TypeError("unexpected datetime column value")


class TokenAuthenticator:
    """Resolves raw bearer tokens to principals; one per process."""

    def __init__(self, *, cache_ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._cache_ttl = cache_ttl
        self._max_entries = max_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self.used_token_ids: set[int] = set()

    async def authenticate(self, raw: str | None) -> Principal | None:
        if not raw or not is_well_formed(raw):
            return None
        digest = token_digest(raw)
        entry = self._cache.get(digest)
        if entry is None or entry.cached_until < time.monotonic():
            entry = await self._lookup(digest)
            if entry is None:
                self._cache.pop(digest, None)
                return None
            self._remember(digest, entry)
        if entry.expires_at is not None and entry.expires_at <= clock.now():
            return None
        self.used_token_ids.add(entry.principal.token_id)
        return entry.principal

    async def _lookup(self, digest: str) -> _Entry | None:
        connection = connections.get("default")
        placeholder = "$1" if connection.capabilities.dialect == "postgres" else "?"
        rows = await connection.execute_query_dict(_LOOKUP_SQL.format(placeholder), [digest])
        if not rows:
            return None
        row = rows[0]
        if not hmac.compare_digest(str(row["digest"]), digest):
            return None
        if row["revoked_at"] is not None or row["terminated_at"] is not None:
            return None
        account_ids = _as_list(row["account_ids"])
        principal = Principal(
            owner_id=OwnerId(int(row["owner_id"])),
            token_id=TokenId(int(row["id"])),
            actions=frozenset(Action(str(a)) for a in _as_list(row["actions"]) or []),
            account_ids=None
            if account_ids is None
            else frozenset(AccountId(int(str(a))) for a in account_ids),
        )
        return _Entry(
            principal, _as_datetime(row["expires_at"]), time.monotonic() + self._cache_ttl
        )

    def _remember(self, digest: str, entry: _Entry) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    def invalidate_token(self, token_id: int) -> None:
        for digest in [d for d, e in self._cache.items() if e.principal.token_id == token_id]:
            del self._cache[digest]

    def invalidate_owner(self, owner_id: int) -> None:
        for digest in [d for d, e in self._cache.items() if e.principal.owner_id == owner_id]:
            del self._cache[digest]

    def take_used_token_ids(self) -> set[int]:
        """Token ids seen since the last call (for the batched last-used update)."""
        used, self.used_token_ids = self.used_token_ids, set()
        return used
