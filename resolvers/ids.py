"""Opaque global ids: ``base64url("Type:number")``, the same for every path to an object.

A malformed id, an id of the wrong type and an id of someone else's object all resolve to
"not found" in the callers, so ids leak nothing.
"""

from __future__ import annotations

import base64
import binascii

_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def unpadded_base64url(data: bytes) -> str:
    """``base64.urlsafe_b64encode`` without padding or its Python-level steps (ids and
    cursors: several on every object of a page)."""
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


def encode_id(type_name: str, number: int) -> str:
    return unpadded_base64url(f"{type_name}:{number}".encode())


def decode_id(global_id: str) -> tuple[str, int] | None:
    """``(type, number)``, or None when the id is not one of ours."""
    if len(global_id) > 64:
        return None
    try:
        text = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, _, number = text.partition(":")
    if not type_name or not number.isdigit() or len(number) > 19:
        return None
    return type_name, int(number)


def decode_typed(global_id: str, expected: str) -> int | None:
    decoded = decode_id(global_id)
    if decoded is None or decoded[0] != expected:
        return None
    return decoded[1]
