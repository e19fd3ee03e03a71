"""Key-encryption keys (KEKs): a 256-bit key with a short id, made at random or from a passphrase.

A KEK only ever wraps per-secret data keys (see ``vault.envelope``). Its id is stored in every
blob it wraps, so ids are short, printable and unique within a ring: 1 to 32 characters from
``A-Z a-z 0-9 _ . -``, starting with a letter or digit (``:`` and ``,`` stay free for the
key-ring string).

This module must never let key material reach ``repr``/``str``, a pickle or an error message;
the material comes out only through the explicitly named ``reveal_material()``, which the key
file and key-ring string writers use.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, NoReturn, final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import KeyRingError
from vault.passphrase import (
    ARGON2ID_PRODUCTION,
    KEY_BYTES,
    Argon2idLimits,
    PassphraseDerivation,
    derive_key_material,
    generate_salt,
)

KEY_ID_MAX_LENGTH = 32
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def is_valid_key_id(key_id: str) -> bool:
    """Whether ``key_id`` may name a key (and so be stored in a blob header)."""
    return _KEY_ID.fullmatch(key_id) is not None


def check_key_id(key_id: str) -> str:
    """Return ``key_id`` if valid, else raise ``KeyRingError``.

    The message does not echo the id: a malformed entry may be a key pasted in the wrong place.
    """
    if not is_valid_key_id(key_id):
        raise KeyRingError(
            f"invalid key id: use 1-{KEY_ID_MAX_LENGTH} characters "
            "from A-Z a-z 0-9 _ . - starting with a letter or digit"
        )
    return key_id


def new_key_id() -> str:
    """Return a fresh random key id such as ``k3f9a61c2``."""
    return "k" + secrets.token_hex(4)


@final
class KeyEncryptionKey:
    """A 256-bit AES-GCM key with an id; ``derivation`` is set when a passphrase made it."""

    __slots__ = ("_aead", "_material", "derivation", "key_id")

    key_id: str
    derivation: PassphraseDerivation | None
    _material: bytes
    _aead: AESGCM

    def __init__(
        self,
        key_id: str,
        material: bytes,
        *,
        derivation: PassphraseDerivation | None = None,
    ) -> None:
        check_key_id(key_id)
        if len(material) != KEY_BYTES:
            raise KeyRingError(f"key {key_id!r} must be {KEY_BYTES} bytes, not {len(material)}")
        material = bytes(material)
        object.__setattr__(self, "key_id", key_id)
        object.__setattr__(self, "derivation", derivation)
        object.__setattr__(self, "_material", material)
        object.__setattr__(self, "_aead", AESGCM(material))

    @property
    def aead(self) -> AESGCM:
        """The AES-256-GCM cipher keyed with this KEK (built once, reused for every wrap)."""
        return self._aead

    def reveal_material(self) -> bytes:
        """Return the raw 32 key bytes, for writing a key file or a key-ring string only."""
        return self._material

    def __repr__(self) -> str:
        origin = "passphrase" if self.derivation is not None else "random"
        return f"KeyEncryptionKey(key_id={self.key_id!r}, origin={origin!r})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("KeyEncryptionKey is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("KeyEncryptionKey is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a KeyEncryptionKey cannot be pickled; use a key file")


def generate_key(key_id: str | None = None) -> KeyEncryptionKey:
    """Return a new KEK of 32 random bytes, with ``key_id`` or a fresh random id."""
    return KeyEncryptionKey(
        new_key_id() if key_id is None else key_id, secrets.token_bytes(KEY_BYTES)
    )


def derive_key(
    passphrase: str | bytes,
    *,
    salt: bytes | None = None,
    limits: Argon2idLimits = ARGON2ID_PRODUCTION,
    key_id: str | None = None,
) -> KeyEncryptionKey:
    """Return the KEK Argon2id derives from ``passphrase``.

    With ``salt`` given the result is deterministic (the same passphrase, salt and limits give
    the same key); without it a fresh salt is drawn. Either way the salt and limits are kept on
    ``key.derivation`` so ``save_key_file`` stores them instead of the key.
    """
    derivation = PassphraseDerivation(salt=generate_salt() if salt is None else salt, limits=limits)
    material = derive_key_material(passphrase, derivation)
    return KeyEncryptionKey(
        new_key_id() if key_id is None else key_id, material, derivation=derivation
    )
