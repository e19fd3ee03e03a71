"""The key file: a key ring stored as JSON, readable by its owner only.

Format (version 1)::

    {
      "format": "inbox-api-vault-keyring",
      "version": 1,
      "primary": "k2",
      "keys": [
        {"id": "k1", "key": "BASE64 OF 32 RANDOM BYTES"},
        {"id": "k2", "argon2id": {"salt": "BASE64 OF 16 BYTES",
                                  "opslimit": 4, "memlimit": 1073741824}}
      ]
    }

A ``key`` entry holds the key itself. An ``argon2id`` entry holds only how to derive it: the key
is recomputed from the passphrase given to ``load_key_file`` (one passphrase per file).

Files are written atomically (a 0600 temporary file in the same directory, fsynced, then
renamed over the target) so a crash never leaves half a key ring. Loading refuses a file that
anyone but its owner may read or write, and says how to fix it.

This module must never log the file's content, put it in an error, or write it with a mode
wider than 0600.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from vault.errors import KeyRingError
from vault.keyring import KeyRing, decode_base64, encode_key
from vault.keys import KeyEncryptionKey, check_key_id, derive_key, generate_key
from vault.passphrase import (
    ARGON2ID_PRODUCTION,
    Argon2idLimits,
    PassphraseDerivation,
    derive_key_material,
)

FILE_FORMAT = "inbox-api-vault-keyring"
FILE_VERSION = 1
FILE_MODE = 0o600
_MAX_FILE_BYTES = 1 << 20


def create_key_file(
    path: str | os.PathLike[str],
    *,
    key_id: str | None = None,
    passphrase: str | bytes | None = None,
    limits: Argon2idLimits = ARGON2ID_PRODUCTION,
) -> KeyRing:
    """Write a new key file holding one primary key and return its ring.

    The key is 32 random bytes, or, with ``passphrase``, derived by Argon2id with a fresh salt
    and ``limits`` (then the file stores only the salt and limits). Refuses to replace an
    existing file: losing a key ring loses every secret sealed under it.
    """
    if passphrase is None:
        key = generate_key(key_id)
    else:
        key = derive_key(passphrase, limits=limits, key_id=key_id)
    ring = KeyRing([key])
    _write_atomically(Path(path), _dump(ring), replace=False)
    return ring


def save_key_file(path: str | os.PathLike[str], ring: KeyRing) -> None:
    """Write ``ring`` to ``path`` (mode 0600), atomically replacing any previous file."""
    _write_atomically(Path(path), _dump(ring), replace=True)


def load_key_file(
    path: str | os.PathLike[str], *, passphrase: str | bytes | None = None
) -> KeyRing:
    """Read the key ring in ``path``; ``passphrase`` is needed if any key is derived."""
    document = _parse(_read_owner_only(Path(path)))
    keys = [_load_entry(entry, passphrase) for entry in document["keys"]]
    if document["primary"] not in {key.key_id for key in keys}:
        raise KeyRingError(f"key file names primary {document['primary']!r} but lacks that key")
    return KeyRing(keys, primary_id=document["primary"])


def _read_owner_only(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise KeyRingError(f"cannot open key file {path}: {error.strerror}") from None
    try:
        # fstat the open descriptor: the file checked is the file read.
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise KeyRingError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise KeyRingError(
                f"key file {path} has mode {mode:04o}, so users other than its owner may read "
                f"or change it; refusing to use it. Fix with: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(_MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_FILE_BYTES:
        raise KeyRingError(f"key file {path} is larger than {_MAX_FILE_BYTES} bytes")
    return data


def _parse(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        # The decode error carries the whole document, key material included: drop it.
        raise KeyRingError("key file is not valid UTF-8 JSON") from None
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise KeyRingError(f"key file is not a {FILE_FORMAT!r} document")
    if document.get("version") != FILE_VERSION:
        raise KeyRingError(f"key file version is not {FILE_VERSION}")
    if not isinstance(document.get("primary"), str):
        raise KeyRingError("key file has no primary key id")
    if not isinstance(document.get("keys"), list) or not document["keys"]:
        raise KeyRingError("key file has no keys")
    return document


def _load_entry(entry: object, passphrase: str | bytes | None) -> KeyEncryptionKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise KeyRingError("key file entry has no id")
    key_id = check_key_id(entry["id"])
    if set(entry) == {"id", "key"} and isinstance(entry["key"], str):
        return KeyEncryptionKey(key_id, decode_base64(entry["key"], f"key {key_id!r}"))
    if set(entry) == {"id", "argon2id"}:
        derivation = _load_derivation(entry["argon2id"], key_id)
        if passphrase is None:
            raise KeyRingError(f"key {key_id!r} is derived from a passphrase and none was given")
        material = derive_key_material(passphrase, derivation)
        return KeyEncryptionKey(key_id, material, derivation=derivation)
    raise KeyRingError(f"key file entry {key_id!r} needs exactly one of 'key' or 'argon2id'")


def _load_derivation(params: object, key_id: str) -> PassphraseDerivation:
    if (
        not isinstance(params, dict)
        or set(params) != {"salt", "opslimit", "memlimit"}
        or not isinstance(params["salt"], str)
        or not all(type(params[name]) is int for name in ("opslimit", "memlimit"))
    ):
        raise KeyRingError(f"key {key_id!r} has malformed argon2id parameters")
    limits = Argon2idLimits(opslimit=params["opslimit"], memlimit=params["memlimit"])
    salt = decode_base64(params["salt"], f"salt of key {key_id!r}")
    return PassphraseDerivation(salt=salt, limits=limits)


def _dump(ring: KeyRing) -> bytes:
    document = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "primary": ring.primary_id,
        "keys": [_dump_entry(key) for key in ring],
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _dump_entry(key: KeyEncryptionKey) -> dict[str, Any]:
    if key.derivation is None:
        return {"id": key.key_id, "key": encode_key(key)}
    return {
        "id": key.key_id,
        "argon2id": {
            "salt": base64.b64encode(key.derivation.salt).decode("ascii"),
            "opslimit": key.derivation.limits.opslimit,
            "memlimit": key.derivation.limits.memlimit,
        },
    }


def _write_atomically(path: Path, data: bytes, *, replace: bool) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as error:
        raise KeyRingError(f"cannot write key file {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), FILE_MODE)  # the umask can narrow the mode, never widen it
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            # link() fails if the target exists, so creating never overwrites a key ring.
            os.link(temporary, path)
    except FileExistsError:
        raise KeyRingError(f"key file {path} already exists; refusing to overwrite it") from None
    except OSError as error:
        raise KeyRingError(f"cannot write key file {path}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
