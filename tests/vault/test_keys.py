import base64
import pickle

import pytest

from vault.errors import KeyRingError
from vault.keys import (
    KeyEncryptionKey,
    check_key_id,
    derive_key,
    generate_key,
    is_valid_key_id,
    new_key_id,
)
from vault.passphrase import ARGON2ID_INTERACTIVE, SALT_BYTES


def renderings_of(material: bytes) -> list[str]:
    """Forms a key's material could take if it leaked into text."""
    return [
        repr(material),
        material.hex(),
        base64.b64encode(material).decode(),
        base64.urlsafe_b64encode(material).decode(),
    ]


def test_generated_keys_are_32_random_bytes() -> None:
    first, second = generate_key("k1"), generate_key("k2")

    assert len(first.reveal_material()) == 32
    assert first.reveal_material() != second.reveal_material()


def test_a_generated_key_gets_a_fresh_short_id_when_none_is_given() -> None:
    key = generate_key()

    assert is_valid_key_id(key.key_id)
    assert key.key_id != generate_key().key_id
    assert len(new_key_id()) <= 16


def test_repr_str_and_format_of_a_key_never_contain_its_material() -> None:
    key = generate_key("k1")
    shown = " ".join([repr(key), str(key), f"{key}", f"{key!r}", repr([key])])

    for leak in renderings_of(key.reveal_material()):
        assert leak not in shown
    assert repr(key) == "KeyEncryptionKey(key_id='k1', origin='random')"


def test_a_key_cannot_be_pickled_or_changed() -> None:
    key = generate_key("k1")

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(AttributeError):
        key.key_id = "k2"


@pytest.mark.parametrize("key_id", ["k1", "2024-11", "prod_primary.v2", "A" * 32, "0"])
def test_valid_key_ids(key_id: str) -> None:
    assert check_key_id(key_id) == key_id


@pytest.mark.parametrize(
    "key_id", ["", "A" * 33, "-k1", "k 1", "k:1", "k,1", "clé", "k1\n", "QUJD+/=="]
)
def test_invalid_key_ids_are_refused_without_being_echoed(key_id: str) -> None:
    with pytest.raises(KeyRingError, match="invalid key id") as caught:
        KeyEncryptionKey(key_id, bytes(32))

    if key_id:
        assert key_id not in str(caught.value)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_material_must_be_256_bits(size: int) -> None:
    with pytest.raises(KeyRingError, match="32 bytes"):
        KeyEncryptionKey("k1", bytes(size))


def test_derive_key_with_a_given_salt_is_deterministic() -> None:
    salt = bytes(range(SALT_BYTES))
    first = derive_key("passphrase", salt=salt, limits=ARGON2ID_INTERACTIVE, key_id="p1")
    second = derive_key("passphrase", salt=salt, limits=ARGON2ID_INTERACTIVE, key_id="p1")

    assert first.reveal_material() == second.reveal_material()
    assert first.derivation is not None
    assert first.derivation.salt == salt
    assert repr(first) == "KeyEncryptionKey(key_id='p1', origin='passphrase')"


def test_derive_key_without_a_salt_draws_a_fresh_one() -> None:
    first = derive_key("passphrase", limits=ARGON2ID_INTERACTIVE)
    second = derive_key("passphrase", limits=ARGON2ID_INTERACTIVE)

    assert first.derivation is not None
    assert second.derivation is not None
    assert first.derivation.salt != second.derivation.salt
    assert first.reveal_material() != second.reveal_material()


def test_an_empty_key_id_is_refused_rather_than_replaced() -> None:
    with pytest.raises(KeyRingError, match="invalid key id"):
        generate_key("")
