"""The vault: key ring and envelope encryption for mailbox credentials. Crypto only: no DB, no web.

Typical use::

    ring = load_key_file("/etc/inbox-api/vault.json")           # or parse_keyring_string(env)
    blob = seal(ring, refresh_token, b"account:42:oauth_refresh_token")
    token = open_sealed(ring, blob, b"account:42:oauth_refresh_token")   # a Secret
    token.reveal()                                                # only where it is sent out

The vault imports nothing from the rest of the project (an import-linter contract checks it);
callers pass it keys, bytes and associated data, and store what it returns.
"""

from vault.envelope import blob_key_id, open_sealed, rewrap, seal
from vault.errors import DecryptionError, KeyRingError, UnknownKeyError, VaultError
from vault.keyfile import create_key_file, load_key_file, save_key_file
from vault.keyring import KeyRing, format_keyring_string, parse_keyring_string
from vault.keys import KeyEncryptionKey, derive_key, generate_key
from vault.passphrase import (
    ARGON2ID_INTERACTIVE,
    ARGON2ID_MODERATE,
    ARGON2ID_PRODUCTION,
    ARGON2ID_SENSITIVE,
    Argon2idLimits,
    PassphraseDerivation,
    generate_salt,
)
from vault.secret import Secret

__all__ = [
    "ARGON2ID_INTERACTIVE",
    "ARGON2ID_MODERATE",
    "ARGON2ID_PRODUCTION",
    "ARGON2ID_SENSITIVE",
    "Argon2idLimits",
    "DecryptionError",
    "KeyEncryptionKey",
    "KeyRing",
    "KeyRingError",
    "PassphraseDerivation",
    "Secret",
    "UnknownKeyError",
    "VaultError",
    "blob_key_id",
    "create_key_file",
    "derive_key",
    "format_keyring_string",
    "generate_key",
    "generate_salt",
    "load_key_file",
    "open_sealed",
    "parse_keyring_string",
    "rewrap",
    "save_key_file",
    "seal",
]
