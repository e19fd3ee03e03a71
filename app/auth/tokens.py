"""The API token format: recognisable prefix, 178 random bits in base62, CRC32 checksum.

``iapi_`` + 30 base62 characters (~178 bits) + 6 base62 characters of CRC32 over the body, so
secret scanners can spot a leaked token and reject typos without a database lookup. Only the
SHA-256 digest of a token is ever stored; this module never logs or stores a raw token.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

TOKEN_PREFIX = "iapi_"  # noqa: S105 (the public prefix, not a secret)
BODY_LENGTH = 30
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(TOKEN_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(_ALPHABET)


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_token() -> str:
    """A fresh raw token. Shown once to its creator, never stored."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def is_well_formed(raw: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about validity)."""
    if len(raw) != TOKEN_LENGTH or not raw.startswith(TOKEN_PREFIX):
        return False
    rest = raw[len(TOKEN_PREFIX) :]
    if not _ALPHABET_SET.issuperset(rest):
        return False
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def token_digest(raw: str) -> str:
    """The SHA-256 hex digest stored in place of the token."""
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def display_prefix(raw: str) -> str:
    """A short, non-secret prefix that identifies a token in lists (``iapi_AbC123``)."""
    return raw[:DISPLAY_PREFIX_LENGTH]
