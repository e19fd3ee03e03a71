"""Where this process's vault key ring comes from, and the one place it is kept once loaded.

Sources, first match wins:

1. ``INBOX_API_VAULT_KEYS`` (``id:base64key,...``, primary first): the operator manages keys.
2. The key file (``settings.effective_vault_key_file``), opened with
   ``INBOX_API_VAULT_PASSPHRASE`` when its keys are derived from a passphrase.
3. Embedded default (SQLite) without a key file at the default path: a new key file (mode 0600)
   is created in the data directory, and one log line says where and under which key id.
4. PostgreSQL with neither: start-up is refused with an error that says where keys come from.
   Several processes share that database, so a key made up by one of them would be a trap.

``load_keyring(settings)`` reads (or creates) the ring; ``configure_vault(ring)`` installs it for
the process and ``current_keyring()`` hands it to the use cases (tests swap it the same way).
``app.services.credentials.start_vault`` does all of it at start-up, after checking the ring
against the rows already sealed. With ``reload_from`` a ring from a key file is re-read when a
credential names a key id the ring lacks and the file has changed since, so a running server
follows ``inbox-api vault rotate`` without a restart. The key-file edits of ``inbox-api vault``
(``create_keyring_file``, ``add_key_to_file``, ``promote_key_in_file``) live here too.

This module must never log, print or put into an error the key material or the passphrase;
key ids and paths are not secret and are what it reports.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.settings import ENV_PREFIX, Settings
from vault import (
    ARGON2ID_PRODUCTION,
    Argon2idLimits,
    KeyEncryptionKey,
    KeyRing,
    VaultError,
    create_key_file,
    derive_key,
    generate_key,
    load_key_file,
    parse_keyring_string,
    save_key_file,
)

logger = logging.getLogger(__name__)


class VaultSetupError(RuntimeError):
    """The vault cannot serve: no key ring is configured, or it does not fit the stored rows."""


def keys_from_environment(settings: Settings) -> bool:
    """Whether the ring comes from ``INBOX_API_VAULT_KEYS`` (the operator then owns rotation)."""
    return _environment_keys(settings) is not None


def read_keyring(settings: Settings) -> KeyRing:
    """Return the key ring the settings name; never creates one.

    Raises ``VaultSetupError`` when none is configured and the vault's ``KeyRingError`` when the
    configured source is unusable (bad string, bad file or mode, missing passphrase).
    """
    keys = _environment_keys(settings)
    if keys is not None:
        return parse_keyring_string(keys)
    path = settings.effective_vault_key_file
    if not path.exists():
        raise VaultSetupError(_no_keys_message(path))
    return load_key_file(path, passphrase=_passphrase(settings))


def load_keyring(settings: Settings, *, limits: Argon2idLimits = ARGON2ID_PRODUCTION) -> KeyRing:
    """Return the configured key ring, creating the embedded default's key file if there is none.

    Only SQLite with the default key-file path gets a new file; ``limits`` is the Argon2id cost
    when its key is derived from the passphrase. Otherwise as ``read_keyring``.
    """
    path = settings.effective_vault_key_file
    if (
        keys_from_environment(settings)
        or settings.is_postgres
        or settings.vault_key_file is not None
        or path.exists()
    ):
        return read_keyring(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    ring = create_key_file(path, passphrase=_passphrase(settings), limits=limits)
    logger.warning(
        "created vault key file %s with primary key %s; back it up: credentials sealed under it "
        "cannot be read without it",
        path,
        ring.primary_id,
    )
    return ring


def create_keyring_file(
    settings: Settings, *, limits: Argon2idLimits = ARGON2ID_PRODUCTION
) -> KeyRing:
    """Create the key file the settings name (``inbox-api vault init``); never overwrites one."""
    _refuse_with_environment_keys(settings)
    path = settings.effective_vault_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    return create_key_file(path, passphrase=_passphrase(settings), limits=limits)


def add_key_to_file(
    settings: Settings, *, key_id: str | None = None, primary: bool = False
) -> KeyRing:
    """Add a new key to the key file, as primary or not, and return the saved ring.

    With a passphrase configured the key is derived from it (fresh salt, the primary's cost), so
    the file keeps holding no key in clear; otherwise it is 32 random bytes.
    """
    ring = _file_ring(settings)
    passphrase = _passphrase(settings)
    key: KeyEncryptionKey
    if passphrase is None:
        key = generate_key(key_id)
    else:
        derivation = ring.primary.derivation
        limits = ARGON2ID_PRODUCTION if derivation is None else derivation.limits
        key = derive_key(passphrase, limits=limits, key_id=key_id)
    ring = ring.with_key(key, primary=primary)
    save_key_file(settings.effective_vault_key_file, ring)
    return ring


def promote_key_in_file(settings: Settings, key_id: str) -> KeyRing:
    """Make ``key_id``, already in the key file, its primary key; return the saved ring."""
    ring = _file_ring(settings).promote(key_id)
    save_key_file(settings.effective_vault_key_file, ring)
    return ring


@dataclass(slots=True)
class _Installed:
    ring: KeyRing
    reload_from: Settings | None
    file_stamp: tuple[int, int, int] | None


_installed: _Installed | None = None


def configure_vault(ring: KeyRing | None, *, reload_from: Settings | None = None) -> None:
    """Install ``ring`` as the process's key ring (None uninstalls it).

    With ``reload_from`` the ring is re-read from its key file when that file changes.
    """
    global _installed
    if ring is None:
        _installed = None
        return
    if reload_from is not None and keys_from_environment(reload_from):
        reload_from = None  # an environment variable does not change under a running process
    _installed = _Installed(
        ring, reload_from, None if reload_from is None else _file_stamp(reload_from)
    )


def current_keyring() -> KeyRing:
    """The installed key ring; ``VaultSetupError`` if none was installed."""
    if _installed is None:
        raise VaultSetupError("the vault key ring is not loaded (start_vault was not called)")
    return _installed.ring


async def refreshed_keyring() -> KeyRing:
    """The installed ring, first re-read from its key file if that file changed since."""
    installed = _installed
    if installed is None or installed.reload_from is None:
        return current_keyring()
    settings = installed.reload_from
    stamp = _file_stamp(settings)
    if stamp is None or stamp == installed.file_stamp:
        return installed.ring
    try:
        ring = await asyncio.to_thread(
            load_key_file, settings.effective_vault_key_file, passphrase=_passphrase(settings)
        )
    except VaultError as error:
        # Keep serving with the ring in hand; the vault's errors name a path or key id at most.
        logger.error("vault key file changed but cannot be re-read: %s", error)
        installed.file_stamp = stamp
        return installed.ring
    installed.ring, installed.file_stamp = ring, stamp
    logger.info(
        "vault key ring re-read from %s: primary %s",
        settings.effective_vault_key_file,
        ring.primary_id,
    )
    return ring


def _file_ring(settings: Settings) -> KeyRing:
    _refuse_with_environment_keys(settings)
    return read_keyring(settings)


def _refuse_with_environment_keys(settings: Settings) -> None:
    if keys_from_environment(settings):
        raise VaultSetupError(
            f"{ENV_PREFIX}VAULT_KEYS is set, so the key ring comes from the environment and the "
            "key file is not used: change the variable on every process instead"
        )


def _environment_keys(settings: Settings) -> str | None:
    if settings.vault_keys is None:
        return None
    return settings.vault_keys.get_secret_value() or None


def _passphrase(settings: Settings) -> str | None:
    if settings.vault_passphrase is None:
        return None
    return settings.vault_passphrase.get_secret_value() or None


def _file_stamp(settings: Settings) -> tuple[int, int, int] | None:
    try:
        status = os.stat(settings.effective_vault_key_file)
    except OSError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def _no_keys_message(path: Path) -> str:
    return (
        f"no vault key ring: {ENV_PREFIX}VAULT_KEYS is not set and the key file {path} does not "
        f"exist. Keys come from {ENV_PREFIX}VAULT_KEYS (id:base64key[,id:base64key...], the "
        f"first is primary) or from a key file ({ENV_PREFIX}VAULT_KEY_FILE, default "
        f"<data_dir>/vault-keys.json, with {ENV_PREFIX}VAULT_PASSPHRASE if its keys are derived "
        "from one). Create the file with `inbox-api vault init`, and give every process that "
        "shares the database the same keys."
    )
