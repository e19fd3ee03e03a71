"""Envelope encryption: seal a secret under its own data key, wrap that key with the ring.

Each ``seal`` draws a fresh random 256-bit data key, encrypts the secret with it
(AES-256-GCM, fresh 96-bit nonce) and wraps the data key with the ring's primary KEK
(AES-256-GCM, its own fresh nonce). The blob, version 1, is::

    offset   size  field
    0        1     scheme version, 0x01
    1        1     n = key id length (1-32)
    2        n     key id (ASCII) of the KEK that wrapped the data key
    2+n      12    wrap nonce
    14+n     48    wrapped data key (32 bytes + 16-byte GCM tag)
    62+n     12    data nonce
    74+n     >=16  ciphertext + 16-byte GCM tag

Associated data, given by the caller (e.g. ``b"account:42:oauth_refresh_token"``), binds a blob
to its row and purpose: a blob copied to another row or column does not open. It enters both
GCM operations:

- wrapping the data key authenticates ``"wrap" label + header (version, key id) + associated
  data``, so a changed version or key id, or the wrong row, fails before anything is decrypted;
- the secret's ciphertext authenticates ``"data" label + version + associated data``. It does
  not cover the key id on purpose: ``rewrap`` changes the key id without touching the ciphertext.

Rotation (``rewrap``) unwraps the data key with the old KEK and wraps it again with the primary
one. The secret itself is never decrypted, so rotating a million credentials handles no
plaintext at all; only the 32-byte data keys pass through memory. Random 96-bit wrap nonces keep
GCM safe for 2**32 wraps (seals plus rewraps) per KEK; rotate well before that.

This module must never return plaintext except inside a ``Secret``, log, or put blob bytes,
keys or plaintext into an error message. Python cannot wipe memory, so data keys and plaintext
live until garbage-collected: keep the process itself trusted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import DecryptionError
from vault.keyring import KeyRing
from vault.keys import KEY_ID_MAX_LENGTH, KeyEncryptionKey, is_valid_key_id
from vault.secret import Secret

SCHEME_VERSION = 1
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = DATA_KEY_BYTES + TAG_BYTES

_WRAP_LABEL = b"inbox-api/vault/wrap:"
_DATA_LABEL = b"inbox-api/vault/data:"
_VERSION_BYTE = bytes([SCHEME_VERSION])


@dataclass(frozen=True, slots=True)
class _Envelope:
    header: bytes  # version, key id length, key id: authenticated when the data key is wrapped
    key_id: str
    wrap_nonce: bytes
    wrapped_key: bytes
    body: bytes  # data nonce + ciphertext + tag: copied untouched by rewrap


def seal(keyring: KeyRing, plaintext: str | bytes | Secret, associated_data: bytes) -> bytes:
    """Encrypt ``plaintext`` for storage in the row and purpose named by ``associated_data``."""
    _check_associated_data(associated_data)
    if isinstance(plaintext, Secret):
        plaintext = plaintext.reveal_bytes()
    elif isinstance(plaintext, str):
        plaintext = plaintext.encode("utf-8")
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
    data_nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(data_nonce, plaintext, _data_aad(associated_data))
    return _wrap(keyring.primary, data_key, data_nonce + ciphertext, associated_data)


def open_sealed(keyring: KeyRing, blob: bytes, associated_data: bytes) -> Secret:
    """Decrypt a blob made by ``seal`` with the same ``associated_data``.

    Raises ``UnknownKeyError`` if the ring lacks the blob's key id (fail closed: do not try
    other keys) and ``DecryptionError`` if the blob was altered, or the key or associated data
    is wrong.
    """
    _check_associated_data(associated_data)
    envelope = _parse(blob)
    data_key = _unwrap(keyring, envelope, associated_data)
    data_nonce, ciphertext = envelope.body[:NONCE_BYTES], envelope.body[NONCE_BYTES:]
    try:
        plaintext = AESGCM(data_key).decrypt(data_nonce, ciphertext, _data_aad(associated_data))
    except InvalidTag:
        raise DecryptionError(
            "cannot decrypt the sealed value: wrong associated data or the blob was altered"
        ) from None
    return Secret(plaintext)


def blob_key_id(blob: bytes) -> str:
    """Return the id of the KEK that wrapped ``blob``'s data key (reads the header only)."""
    return _parse(blob).key_id


def rewrap(keyring: KeyRing, blob: bytes, associated_data: bytes) -> bytes:
    """Return ``blob`` with its data key wrapped by the ring's primary KEK.

    Only the 32-byte data key is unwrapped and wrapped again; the ciphertext of the secret is
    copied as is and its plaintext is never computed. A blob already under the primary key is
    checked (its data key must unwrap with ``associated_data``) and returned unchanged, so
    rewrapping twice is harmless and a caller can skip the write when ``new == blob``.
    """
    _check_associated_data(associated_data)
    envelope = _parse(blob)
    data_key = _unwrap(keyring, envelope, associated_data)
    if envelope.key_id == keyring.primary_id:
        return blob
    return _wrap(keyring.primary, data_key, envelope.body, associated_data)


def _wrap(kek: KeyEncryptionKey, data_key: bytes, body: bytes, associated_data: bytes) -> bytes:
    encoded_id = kek.key_id.encode("ascii")
    header = _VERSION_BYTE + bytes([len(encoded_id)]) + encoded_id
    wrap_nonce = secrets.token_bytes(NONCE_BYTES)
    wrapped_key = kek.aead.encrypt(wrap_nonce, data_key, _wrap_aad(header, associated_data))
    return header + wrap_nonce + wrapped_key + body


def _unwrap(keyring: KeyRing, envelope: _Envelope, associated_data: bytes) -> bytes:
    kek = keyring.get(envelope.key_id)
    try:
        return kek.aead.decrypt(
            envelope.wrap_nonce, envelope.wrapped_key, _wrap_aad(envelope.header, associated_data)
        )
    except InvalidTag:
        raise DecryptionError(
            "cannot unwrap the data key of the sealed value: wrong key or associated data, "
            "or the blob was altered"
        ) from None


def _parse(blob: bytes) -> _Envelope:
    if len(blob) < 2 or blob[0] != SCHEME_VERSION:
        version = blob[0] if blob else None
        raise DecryptionError(f"not a sealed blob of scheme version {SCHEME_VERSION} ({version=})")
    id_length = blob[1]
    wrap_nonce_at = 2 + id_length
    wrapped_key_at = wrap_nonce_at + NONCE_BYTES
    body_at = wrapped_key_at + WRAPPED_KEY_BYTES
    if not 1 <= id_length <= KEY_ID_MAX_LENGTH or len(blob) < body_at + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"sealed blob is malformed or truncated ({len(blob)} bytes)")
    key_id = blob[2:wrap_nonce_at].decode("ascii", errors="replace")
    if not is_valid_key_id(key_id):
        raise DecryptionError("sealed blob has a malformed key id")
    return _Envelope(
        header=blob[:wrap_nonce_at],
        key_id=key_id,
        wrap_nonce=blob[wrap_nonce_at:wrapped_key_at],
        wrapped_key=blob[wrapped_key_at:body_at],
        body=blob[body_at:],
    )


def _wrap_aad(header: bytes, associated_data: bytes) -> bytes:
    return _WRAP_LABEL + header + associated_data


def _data_aad(associated_data: bytes) -> bytes:
    return _DATA_LABEL + _VERSION_BYTE + associated_data


def _check_associated_data(associated_data: bytes) -> None:
    # Empty associated data would let a blob open in any row: that is a caller bug.
    if not isinstance(associated_data, bytes) or not associated_data:
        raise ValueError("associated_data must be non-empty bytes naming the row and purpose")
