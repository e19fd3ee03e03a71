import pytest

from vault.errors import KeyRingError
from vault.passphrase import (
    ARGON2ID_INTERACTIVE,
    ARGON2ID_PRODUCTION,
    ARGON2ID_SENSITIVE,
    KEY_BYTES,
    SALT_BYTES,
    Argon2idLimits,
    PassphraseDerivation,
    derive_key_material,
    generate_salt,
)

SALT = bytes(range(SALT_BYTES))
FAST = PassphraseDerivation(salt=SALT, limits=ARGON2ID_INTERACTIVE)


def test_the_same_passphrase_and_salt_give_the_same_key() -> None:
    first = derive_key_material("correct horse battery staple", FAST)
    second = derive_key_material(b"correct horse battery staple", FAST)

    assert first == second
    assert len(first) == KEY_BYTES


def test_a_different_salt_gives_a_different_key() -> None:
    other_salt = PassphraseDerivation(salt=bytes(SALT_BYTES), limits=ARGON2ID_INTERACTIVE)

    assert derive_key_material("passphrase", FAST) != derive_key_material("passphrase", other_salt)


def test_a_different_passphrase_gives_a_different_key() -> None:
    assert derive_key_material("passphrase", FAST) != derive_key_material("passphrasf", FAST)


def test_production_default_is_the_sensitive_preset() -> None:
    assert ARGON2ID_PRODUCTION == ARGON2ID_SENSITIVE
    assert PassphraseDerivation(salt=SALT).limits == ARGON2ID_PRODUCTION


def test_salts_are_fresh_and_sized_for_argon2id() -> None:
    salts = {generate_salt() for _ in range(32)}

    assert len(salts) == 32
    assert {len(salt) for salt in salts} == {SALT_BYTES}


def test_a_salt_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(KeyRingError, match="salt"):
        PassphraseDerivation(salt=b"short", limits=ARGON2ID_INTERACTIVE)


@pytest.mark.parametrize(
    "limits",
    [
        Argon2idLimits(opslimit=1, memlimit=ARGON2ID_INTERACTIVE.memlimit),
        Argon2idLimits(opslimit=ARGON2ID_INTERACTIVE.opslimit, memlimit=8192),
    ],
)
def test_limits_weaker_than_interactive_are_refused(limits: Argon2idLimits) -> None:
    with pytest.raises(KeyRingError, match="below the interactive preset"):
        PassphraseDerivation(salt=SALT, limits=limits)


def test_limits_libsodium_cannot_run_are_refused() -> None:
    with pytest.raises(KeyRingError, match="above"):
        PassphraseDerivation(salt=SALT, limits=Argon2idLimits(opslimit=2**40, memlimit=2**30))


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(KeyRingError, match="empty"):
        derive_key_material("", FAST)
