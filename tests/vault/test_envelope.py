import os

import pytest

from vault.envelope import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    blob_key_id,
    open_sealed,
    rewrap,
    seal,
)
from vault.errors import DecryptionError, UnknownKeyError, VaultError
from vault.keyring import KeyRing
from vault.keys import KeyEncryptionKey, generate_key
from vault.secret import Secret

AD = b"account:42:oauth_refresh_token"


def make_ring(*key_ids: str) -> KeyRing:
    """A ring of fresh random keys; the first id is primary."""
    return KeyRing([generate_key(key_id) for key_id in key_ids or ("k1",)])


@pytest.mark.parametrize(
    "plaintext",
    ["", "hunter2", "pässwörd ✉ 密码 🔑", "x" * 10_000],
    ids=["empty", "ascii", "non-ascii", "long-text"],
)
def test_text_round_trips(plaintext: str) -> None:
    ring = make_ring()

    opened = open_sealed(ring, seal(ring, plaintext, AD), AD)

    assert isinstance(opened, Secret)
    assert opened.reveal() == plaintext


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"\x00\xff\xfe binary", os.urandom(4 * 1024 * 1024)],
    ids=["empty", "binary", "4-MiB"],
)
def test_bytes_round_trip(plaintext: bytes) -> None:
    ring = make_ring()

    assert open_sealed(ring, seal(ring, plaintext, AD), AD).reveal_bytes() == plaintext


def test_a_secret_can_be_sealed_without_revealing_it_first() -> None:
    ring = make_ring()

    assert open_sealed(ring, seal(ring, Secret("token"), AD), AD) == Secret("token")


def test_the_blob_layout_is_header_wrapped_key_nonce_and_ciphertext() -> None:
    ring = make_ring("k1")
    plaintext = b"hunter2"

    blob = seal(ring, plaintext, AD)

    assert blob[:4] == b"\x01\x02k1"
    wrapped_key = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES
    assert len(blob) == 4 + wrapped_key + NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert plaintext not in blob
    assert AD not in blob


def test_sealing_twice_gives_unrelated_blobs() -> None:
    ring = make_ring()

    first, second = seal(ring, "same", AD), seal(ring, "same", AD)

    assert first[:4] == second[:4]
    assert first[4:] != second[4:]
    assert first[-(NONCE_BYTES + 4 + TAG_BYTES) :] != second[-(NONCE_BYTES + 4 + TAG_BYTES) :]


def test_blob_key_id_reads_the_wrapping_key_id() -> None:
    ring = make_ring("2024-11-primary", "k1")

    assert blob_key_id(seal(ring, "x", AD)) == "2024-11-primary"


def test_flipping_any_single_byte_makes_the_blob_unreadable() -> None:
    # k0 and k3 differ from k1 by one bit, so some key id flips name a key the ring holds.
    ring = KeyRing([generate_key("k1"), generate_key("k0"), generate_key("k3")])
    blob = seal(ring, "hunter2", AD)
    key_id_bytes = range(1, 4)

    for index in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(blob)
            tampered[index] ^= mask
            expected = (
                (DecryptionError, UnknownKeyError) if index in key_id_bytes else DecryptionError
            )
            with pytest.raises(expected):
                open_sealed(ring, bytes(tampered), AD)


def test_truncated_or_extended_blobs_are_unreadable() -> None:
    ring = make_ring()
    blob = seal(ring, "hunter2", AD)

    for length in range(len(blob)):
        with pytest.raises(DecryptionError):
            open_sealed(ring, blob[:length], AD)
    with pytest.raises(DecryptionError):
        open_sealed(ring, blob + b"\x00", AD)


def test_a_key_with_the_same_id_but_other_material_cannot_open() -> None:
    blob = seal(make_ring("k1"), "hunter2", AD)

    with pytest.raises(DecryptionError, match="wrong key or associated data"):
        open_sealed(make_ring("k1"), blob, AD)


@pytest.mark.parametrize(
    "other_ad",
    [
        b"account:43:oauth_refresh_token",
        b"account:42:oauth_access_token",
        b"account:42:oauth_refresh_token ",
        b"account:4",
    ],
)
def test_a_blob_moved_to_other_associated_data_cannot_open(other_ad: bytes) -> None:
    ring = make_ring()
    blob = seal(ring, "hunter2", AD)

    with pytest.raises(DecryptionError):
        open_sealed(ring, blob, other_ad)
    with pytest.raises(DecryptionError):
        rewrap(ring.with_key(generate_key("k2"), primary=True), blob, other_ad)


def test_a_blob_under_a_key_the_ring_lacks_raises_unknown_key_error() -> None:
    blob = seal(make_ring("retired"), "hunter2", AD)
    ring = make_ring("k1", "k2")

    with pytest.raises(UnknownKeyError) as caught:
        open_sealed(ring, blob, AD)
    assert caught.value.key_id == "retired"
    with pytest.raises(UnknownKeyError):
        rewrap(ring, blob, AD)


def test_ciphertext_under_another_data_key_does_not_open() -> None:
    ring = make_ring()
    first, second = seal(ring, "first", AD), seal(ring, "other", AD)
    body_at = 4 + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES

    with pytest.raises(DecryptionError, match="blob was altered"):
        open_sealed(ring, first[:body_at] + second[body_at:], AD)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(100), b"\x01\x00" + bytes(100)])
def test_garbage_is_a_decryption_error(blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_sealed(make_ring(), blob, AD)
    with pytest.raises(DecryptionError):
        blob_key_id(blob)


def test_a_non_ascii_key_id_in_a_blob_is_a_decryption_error() -> None:
    blob = bytearray(seal(make_ring("k1"), "x", AD))
    blob[2] = 0xE9

    with pytest.raises(DecryptionError, match="malformed key id"):
        blob_key_id(bytes(blob))


def test_errors_never_carry_plaintext_key_or_blob() -> None:
    ring = make_ring("k1")
    plaintext = "plaintext-credential-value"
    blob = seal(ring, plaintext, AD)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])

    with pytest.raises(VaultError) as caught:
        open_sealed(ring, tampered, AD)

    message = str(caught.value)
    assert plaintext not in message
    assert blob.hex()[:16] not in message
    assert ring.primary.reveal_material().hex()[:16] not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("bad_ad", [b"", "account:42"])
def test_associated_data_must_be_non_empty_bytes(bad_ad: bytes) -> None:
    ring = make_ring()

    with pytest.raises(ValueError, match="associated_data"):
        seal(ring, "x", bad_ad)
    with pytest.raises(ValueError, match="associated_data"):
        open_sealed(ring, seal(ring, "x", AD), bad_ad)


def body_of(blob: bytes) -> bytes:
    """The data nonce, ciphertext and tag: everything after the wrapped data key."""
    key_id_length = blob[1]
    return blob[2 + key_id_length + NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES :]


def test_rotation_rewraps_every_blob_under_the_new_primary() -> None:
    ring = make_ring("k1")
    secrets_by_ad = {f"account:{n}:imap_password".encode(): f"password-{n}" for n in range(300)}
    blobs = {ad: seal(ring, value, ad) for ad, value in secrets_by_ad.items()}

    ring = ring.with_key(generate_key("k2")).promote("k2")
    rewrapped = {ad: rewrap(ring, blob, ad) for ad, blob in blobs.items()}

    assert {blob_key_id(blob) for blob in rewrapped.values()} == {"k2"}
    retired = ring.without_key("k1")
    for ad, blob in rewrapped.items():
        assert open_sealed(retired, blob, ad).reveal() == secrets_by_ad[ad]
        assert body_of(blob) == body_of(blobs[ad])


def test_rewrap_of_a_current_blob_returns_it_unchanged() -> None:
    ring = make_ring("k2", "k1")
    blob = seal(ring, "hunter2", AD)

    again = rewrap(ring, blob, AD)

    assert again == blob
    assert rewrap(ring, again, AD) == blob
    assert open_sealed(ring, again, AD).reveal() == "hunter2"


def test_rewrap_never_decrypts_the_secret() -> None:
    # A corrupted ciphertext is carried over untouched: rewrap only unwraps the data key.
    old = make_ring("k1")
    blob = seal(old, "hunter2", AD)
    corrupted = blob[:-1] + bytes([blob[-1] ^ 1])
    ring = old.with_key(generate_key("k2"), primary=True)

    rewrapped = rewrap(ring, corrupted, AD)

    assert blob_key_id(rewrapped) == "k2"
    assert body_of(rewrapped) == body_of(corrupted)
    with pytest.raises(DecryptionError):
        open_sealed(ring, rewrapped, AD)


def test_a_rewrapped_blob_is_bound_to_the_new_key_id() -> None:
    material = os.urandom(32)
    ring = KeyRing([KeyEncryptionKey("k1", material), KeyEncryptionKey("k2", material)])
    blob = rewrap(ring.promote("k2"), seal(ring, "hunter2", AD), AD)
    relabelled = blob[:3] + b"1" + blob[4:]

    # Same material under both ids: only the authenticated header tells them apart.
    with pytest.raises(DecryptionError):
        open_sealed(ring, relabelled, AD)
