import pytest

from vault.errors import DecryptionError, KeyRingError, UnknownKeyError, VaultError


@pytest.mark.parametrize("error_type", [KeyRingError, UnknownKeyError, DecryptionError])
def test_every_vault_error_is_a_vault_error(error_type: type[Exception]) -> None:
    assert issubclass(error_type, VaultError)


def test_unknown_key_error_names_the_missing_key_id() -> None:
    error = UnknownKeyError("k2024")

    assert error.key_id == "k2024"
    assert "k2024" in str(error)


def test_the_three_failures_are_distinct() -> None:
    assert not issubclass(UnknownKeyError, DecryptionError)
    assert not issubclass(DecryptionError, KeyRingError)
    assert not issubclass(KeyRingError, UnknownKeyError)
