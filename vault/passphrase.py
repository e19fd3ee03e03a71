"""Argon2id: turn an operator's passphrase and a stored salt into 256-bit key material.

The salt and the cost limits are not secret; they are stored beside the key id (in the key
file) so the same passphrase yields the same key on every start. Cost limits are libsodium's
presets. ``ARGON2ID_PRODUCTION`` is the default for keys created for real use: libsodium's
"sensitive" preset, 4 passes over 1 GiB, which takes several seconds and is paid once per
process start. Tests pass ``ARGON2ID_INTERACTIVE`` (2 passes, 64 MiB, about 0.1 s). Nothing
weaker than the interactive preset is accepted, so a tampered key file cannot quietly make a
key cheap to brute-force.

This module must never keep, log or return the passphrase, and knows nothing of key rings.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id

from vault.errors import KeyRingError

KEY_BYTES = 32
SALT_BYTES: int = argon2id.SALTBYTES


@dataclass(frozen=True)
class Argon2idLimits:
    """Argon2id cost: ``opslimit`` passes over ``memlimit`` bytes of memory."""

    opslimit: int
    memlimit: int


ARGON2ID_INTERACTIVE = Argon2idLimits(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE)
ARGON2ID_MODERATE = Argon2idLimits(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
ARGON2ID_SENSITIVE = Argon2idLimits(argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE)
ARGON2ID_PRODUCTION = ARGON2ID_SENSITIVE


@dataclass(frozen=True)
class PassphraseDerivation:
    """How a key was derived: the salt and the cost. Both are stored; neither is secret."""

    salt: bytes
    limits: Argon2idLimits = ARGON2ID_PRODUCTION

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_BYTES:
            raise KeyRingError(f"an Argon2id salt is {SALT_BYTES} bytes, not {len(self.salt)}")
        floor = ARGON2ID_INTERACTIVE
        if self.limits.opslimit < floor.opslimit or self.limits.memlimit < floor.memlimit:
            raise KeyRingError("Argon2id limits are below the interactive preset")
        if (
            self.limits.opslimit > argon2id.OPSLIMIT_MAX
            or self.limits.memlimit > argon2id.MEMLIMIT_MAX
        ):
            raise KeyRingError("Argon2id limits are above what libsodium accepts")


def generate_salt() -> bytes:
    """Return a fresh random salt for a new passphrase-derived key."""
    return secrets.token_bytes(SALT_BYTES)


def derive_key_material(passphrase: str | bytes, derivation: PassphraseDerivation) -> bytes:
    """Return the 32-byte key Argon2id derives from ``passphrase`` with ``derivation``."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not passphrase:
        raise KeyRingError("the passphrase is empty")
    try:
        return argon2id.kdf(
            KEY_BYTES,
            passphrase,
            derivation.salt,
            opslimit=derivation.limits.opslimit,
            memlimit=derivation.limits.memlimit,
        )
    except (nacl.exceptions.CryptoError, MemoryError):
        raise KeyRingError("Argon2id derivation failed (not enough memory?)") from None
