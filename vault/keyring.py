"""The key ring: the KEKs a process can unwrap with, one of them primary, and its string form.

New blobs are always wrapped with the primary key; any key in the ring can open blobs that name
it. Rotation is three steps, each returning a new ring (a ring never changes under a running
request)::

    ring = ring.with_key(generate_key("k2"))   # 1. every process learns the new key
    ring = ring.promote("k2")                   # 2. new blobs are wrapped with k2
    ...rewrap every stored blob (vault.envelope.rewrap)...
    ring = ring.without_key("k1")               # 3. retire k1 once no blob names it

Key-ring string (for an environment variable), the primary first::

    k2:BASE64KEY,k1:BASE64KEY

Entries are ``id:key`` with the 32-byte key in standard padded base64, separated by commas;
spaces around entries are ignored. Passphrase-derived keys belong in a key file instead.

This module must never put key material in ``repr``/``str``, errors or pickles.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn, final

from vault.errors import KeyRingError, UnknownKeyError
from vault.keys import KeyEncryptionKey, is_valid_key_id


@final
class KeyRing:
    """An immutable set of KEKs by id; ``primary`` wraps new data keys."""

    __slots__ = ("_keys", "_primary_id")

    _keys: dict[str, KeyEncryptionKey]
    _primary_id: str

    def __init__(self, keys: Iterable[KeyEncryptionKey], *, primary_id: str | None = None) -> None:
        by_id: dict[str, KeyEncryptionKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise KeyRingError(f"key id {key.key_id!r} appears twice in the key ring")
            by_id[key.key_id] = key
        if not by_id:
            raise KeyRingError("a key ring needs at least one key")
        if primary_id is None:
            primary_id = next(iter(by_id))
        elif primary_id not in by_id:
            raise UnknownKeyError(primary_id)
        object.__setattr__(self, "_keys", by_id)
        object.__setattr__(self, "_primary_id", primary_id)

    @property
    def primary(self) -> KeyEncryptionKey:
        """The key that wraps every new (and every rewrapped) data key."""
        return self._keys[self._primary_id]

    @property
    def primary_id(self) -> str:
        return self._primary_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of all keys, in the order they were added."""
        return tuple(self._keys)

    def get(self, key_id: str) -> KeyEncryptionKey:
        """Return the key named ``key_id``; raise ``UnknownKeyError`` if the ring lacks it."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def with_key(self, key: KeyEncryptionKey, *, primary: bool = False) -> KeyRing:
        """Return a ring that also holds ``key`` (and makes it primary if asked)."""
        return KeyRing(
            [*self._keys.values(), key],
            primary_id=key.key_id if primary else self._primary_id,
        )

    def promote(self, key_id: str) -> KeyRing:
        """Return a ring whose primary is ``key_id``, which must already be in the ring."""
        return KeyRing(self._keys.values(), primary_id=self.get(key_id).key_id)

    def without_key(self, key_id: str) -> KeyRing:
        """Return a ring without ``key_id``; blobs it wrapped can no longer be opened."""
        self.get(key_id)
        if key_id == self._primary_id:
            raise KeyRingError(f"key {key_id!r} is primary; promote another key first")
        return KeyRing(
            (key for key in self._keys.values() if key.key_id != key_id),
            primary_id=self._primary_id,
        )

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[KeyEncryptionKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(primary_id={self._primary_id!r}, key_ids={self.key_ids!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("KeyRing is immutable; its methods return new rings")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("KeyRing is immutable; its methods return new rings")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a KeyRing cannot be pickled; use a key file")


def parse_keyring_string(value: str) -> KeyRing:
    """Build a ring from ``id:base64key,id:base64key``; the first entry is primary."""
    keys = []
    for position, entry in enumerate(value.split(","), start=1):
        key_id, separator, encoded = entry.strip().partition(":")
        if not separator:
            raise KeyRingError(f"key-ring entry {position} is not of the form id:base64key")
        if not is_valid_key_id(key_id):
            raise KeyRingError(f"key-ring entry {position} has an invalid key id")
        keys.append(KeyEncryptionKey(key_id, decode_base64(encoded, f"key {key_id!r}")))
    return KeyRing(keys)


def format_keyring_string(ring: KeyRing) -> str:
    """Return the key-ring string of ``ring``, primary first. It contains key material."""
    ordered = [ring.primary, *(key for key in ring if key.key_id != ring.primary_id)]
    return ",".join(f"{key.key_id}:{encode_key(key)}" for key in ordered)


def encode_key(key: KeyEncryptionKey) -> str:
    """Return the key material in standard base64 (for key files and key-ring strings)."""
    return base64.b64encode(key.reveal_material()).decode("ascii")


def decode_base64(encoded: str, what: str) -> bytes:
    """Decode standard padded base64; on failure name only ``what``, never the input."""
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{what} is not valid base64") from None
