"""Typed errors of the vault.

Every error the vault raises on purpose is a ``VaultError``, so a caller can catch the whole
family in one place and still tell the cases apart::

    VaultError
    ├── KeyRingError        the key ring cannot be built: bad key-ring string, bad key id, bad
    │                       key file (unreadable, not JSON, group/world accessible), bad or
    │                       missing passphrase, Argon2id limits out of range
    ├── UnknownKeyError     a sealed blob names a key id the ring does not hold (or a key id
    │                       to promote/remove is absent); callers fail closed on it and mark
    │                       the account as needing attention rather than guessing another key
    └── DecryptionError     a sealed blob cannot be opened: tampered or truncated bytes, wrong
                            key, wrong associated data, unsupported scheme version

Messages name key ids, paths, sizes and file modes, which are not secret. They never carry key
material, plaintext, passphrases or blob bytes, and errors raised while parsing secret-bearing
input are raised ``from None`` so a chained exception cannot smuggle that input into a log.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of every error the vault raises on purpose."""


class KeyRingError(VaultError):
    """The key ring, a key, or the key file it comes from is unusable."""


class UnknownKeyError(VaultError):
    """The ring holds no key with the requested id.

    ``key_id`` is kept so a caller can report which key is missing (key ids are not secret).
    """

    def __init__(self, key_id: str) -> None:
        super().__init__(f"the key ring holds no key with id {key_id!r}")
        self.key_id = key_id


class DecryptionError(VaultError):
    """A sealed blob could not be opened; it is never partially trusted."""
