"""The one clock every retention, expiry and lease decision reads; tests can move it.

Production reads the system clock in UTC. Tests call ``travel(delta)`` (or ``freeze``) to move
time without sleeping; ``reset()`` goes back to the system clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def travel(delta: timedelta) -> None:
    """Move the clock by ``delta`` (tests only)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def freeze(at: datetime) -> None:
    """Stop the clock at ``at`` (tests only)."""
    global _frozen
    _frozen = at


def reset() -> None:
    """Back to the system clock."""
    global _offset, _frozen
    _offset = timedelta(0)
    _frozen = None
