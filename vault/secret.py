"""``Secret``: the only shape in which a decrypted value leaves the vault.

A ``Secret`` holds a credential in memory and refuses every accidental way out: ``str``,
``repr`` and f-strings show ``**********``; pickling, copying into a pickle-based cache and
``json.dumps`` fail; it cannot be a dict key or a set member. The value comes out only through
``reveal()`` / ``reveal_bytes()``, so every place that handles a clear credential is one grep
away. Equality is constant-time for values of the same length.

This module must never log, print, hash or serialise the value, and imports nothing else from
the vault so any layer can depend on it.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn, final

MASK = "**********"


@final
class Secret:
    """A decrypted credential whose value shows only when explicitly revealed."""

    __slots__ = ("_value",)

    _value: bytes

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, bytes):
            raise TypeError(f"Secret wraps str or bytes, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the value as text; the caller now holds a clear credential."""
        try:
            return self._value.decode("utf-8")
        except UnicodeDecodeError:
            # The decode error would quote the offending byte; say only what went wrong.
            raise ValueError("the secret is not UTF-8 text; use reveal_bytes()") from None

    def reveal_bytes(self) -> bytes:
        """Return the value as bytes; the caller now holds a clear credential."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    # A hash of the value would be an oracle for it, and equal secrets must hash equally.
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled; seal it instead")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
