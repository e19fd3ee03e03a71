"""Type aliases shared by the Microsoft emulators (Graph mail and the identity platform).

Like `starlette/types.py`, this module imports nothing else from the package, so every other
module can depend on it without cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

Clock = Callable[[], float]
"""Seconds since the epoch. Injected everywhere time matters, so tests never sleep long."""

JSONObject = dict[str, Any]


class IdType(Enum):
    """Which message id a client sees (PROVIDERS.md M7)."""

    REST = "rest"
    """The default: changes whenever the message moves to another folder."""
    IMMUTABLE = "immutable"
    """Asked for with `Prefer: IdType="ImmutableId"`: stable across moves."""
