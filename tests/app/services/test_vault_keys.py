"""Where the key ring comes from: environment, key file, the embedded default's new file."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.vault_keys import (
    VaultSetupError,
    add_key_to_file,
    configure_vault,
    create_keyring_file,
    current_keyring,
    load_keyring,
    promote_key_in_file,
    read_keyring,
    refreshed_keyring,
)
from app.settings import Settings
from vault import (
    ARGON2ID_INTERACTIVE,
    KeyRing,
    KeyRingError,
    create_key_file,
    format_keyring_string,
    generate_key,
    load_key_file,
    open_sealed,
    save_key_file,
    seal,
)

POSTGRES_URL = "postgres://nobody@127.0.0.1:1/nothing"
AD = b"inbox-api:credential:1:imap_password"


@pytest.fixture(autouse=True)
def _uninstall() -> Iterator[None]:
    yield
    configure_vault(None)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("INBOX_API_VAULT"):
            monkeypatch.delenv(name)


def _embedded(data_dir: Path, **overrides: object) -> Settings:
    return Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


def _materials(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    return [entry["key"] for entry in document["keys"] if "key" in entry]


def test_the_embedded_default_creates_a_private_key_file_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _embedded(tmp_path / "data")
    caplog.set_level(logging.DEBUG)

    ring = load_keyring(settings)

    path = tmp_path / "data" / "vault-keys.json"
    assert settings.effective_vault_key_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [record] = caplog.records
    assert str(path) in record.getMessage()
    assert ring.primary_id in record.getMessage()
    [material] = _materials(path)
    assert material not in caplog.text
    assert base64.b64decode(material).hex() not in caplog.text

    caplog.clear()
    again = load_keyring(settings)
    assert caplog.records == []
    assert again.primary_id == ring.primary_id
    assert open_sealed(again, seal(ring, "x", AD), AD).reveal() == "x"


def test_the_new_key_file_is_derived_from_the_passphrase_when_one_is_set(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, vault_passphrase="correct horse battery staple")
    ring = load_keyring(settings, limits=ARGON2ID_INTERACTIVE)

    assert _materials(settings.effective_vault_key_file) == []
    assert open_sealed(load_keyring(settings), seal(ring, "x", AD), AD).reveal() == "x"
    with pytest.raises(KeyRingError, match="passphrase"):
        load_keyring(_embedded(tmp_path))


def test_the_environment_overrides_the_key_file(tmp_path: Path) -> None:
    create_key_file(tmp_path / "vault-keys.json")
    key = generate_key("env1")
    settings = _embedded(tmp_path, vault_keys=format_keyring_string(KeyRing([key])))

    assert load_keyring(settings).key_ids == ("env1",)


def test_postgres_without_keys_refuses_to_start(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, database_url=POSTGRES_URL)
    with pytest.raises(VaultSetupError) as caught:
        load_keyring(settings)
    message = str(caught.value)
    for hint in ("INBOX_API_VAULT_KEYS", "INBOX_API_VAULT_KEY_FILE", "inbox-api vault init"):
        assert hint in message
    assert not settings.effective_vault_key_file.exists()


def test_postgres_with_a_key_file_or_keys_starts(tmp_path: Path) -> None:
    created = create_key_file(tmp_path / "vault-keys.json")
    assert load_keyring(_embedded(tmp_path, database_url=POSTGRES_URL)).key_ids == created.key_ids
    with_env = _embedded(
        tmp_path / "elsewhere",
        database_url=POSTGRES_URL,
        vault_keys=format_keyring_string(KeyRing([generate_key("env1")])),
    )
    assert load_keyring(with_env).primary_id == "env1"


def test_a_configured_key_file_that_is_missing_is_not_made_up(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, vault_key_file=tmp_path / "typo.json")
    with pytest.raises(VaultSetupError):
        load_keyring(settings)
    assert not (tmp_path / "typo.json").exists()
    with pytest.raises(VaultSetupError):
        read_keyring(_embedded(tmp_path))


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    create_key_file(tmp_path / "vault-keys.json")
    (tmp_path / "vault-keys.json").chmod(0o640)
    with pytest.raises(KeyRingError, match="chmod 600"):
        load_keyring(_embedded(tmp_path))


def test_the_installed_ring_can_be_swapped() -> None:
    with pytest.raises(VaultSetupError):
        current_keyring()
    first, second = KeyRing([generate_key()]), KeyRing([generate_key()])
    configure_vault(first)
    assert current_keyring() is first
    configure_vault(second)
    assert current_keyring() is second
    configure_vault(None)
    with pytest.raises(VaultSetupError):
        current_keyring()


async def test_a_changed_key_file_is_read_again(tmp_path: Path) -> None:
    settings = _embedded(tmp_path)
    ring = load_keyring(settings)
    configure_vault(ring, reload_from=settings)
    assert await refreshed_keyring() is ring

    rotated = add_key_to_file(settings, primary=True)
    refreshed = await refreshed_keyring()
    assert refreshed.primary_id == rotated.primary_id != ring.primary_id
    assert current_keyring() is refreshed


async def test_an_unreadable_key_file_keeps_the_ring_in_hand(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _embedded(tmp_path)
    ring = load_keyring(settings)
    configure_vault(ring, reload_from=settings)
    settings.effective_vault_key_file.write_text("not json")

    assert await refreshed_keyring() is ring
    assert "cannot be re-read" in caplog.text


async def test_a_ring_from_the_environment_is_never_reloaded(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, vault_keys=format_keyring_string(KeyRing([generate_key()])))
    ring = load_keyring(settings)
    configure_vault(ring, reload_from=settings)
    save_key_file(settings.effective_vault_key_file, KeyRing([generate_key()]))
    assert await refreshed_keyring() is ring


def test_adding_and_promoting_keys_in_the_file(tmp_path: Path) -> None:
    settings = _embedded(tmp_path)
    first = create_keyring_file(settings)
    with pytest.raises(KeyRingError, match="already exists"):
        create_keyring_file(settings)

    added = add_key_to_file(settings, key_id="k2")
    assert added.primary_id == first.primary_id
    assert load_key_file(settings.effective_vault_key_file).key_ids == (first.primary_id, "k2")
    promoted = promote_key_in_file(settings, "k2")
    assert promoted.primary_id == "k2"
    assert load_key_file(settings.effective_vault_key_file).primary_id == "k2"


def test_keys_added_with_a_passphrase_are_derived_too(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, vault_passphrase="a long passphrase")
    create_key_file(
        settings.effective_vault_key_file,
        passphrase="a long passphrase",
        limits=ARGON2ID_INTERACTIVE,
    )
    ring = add_key_to_file(settings, primary=True)
    assert _materials(settings.effective_vault_key_file) == []
    assert ring.primary.derivation is not None
    assert ring.primary.derivation.limits == ARGON2ID_INTERACTIVE


def test_the_key_file_is_not_edited_when_keys_come_from_the_environment(tmp_path: Path) -> None:
    settings = _embedded(tmp_path, vault_keys=format_keyring_string(KeyRing([generate_key()])))
    for edit in (
        lambda: create_keyring_file(settings),
        lambda: add_key_to_file(settings),
        lambda: promote_key_in_file(settings, "k1"),
    ):
        with pytest.raises(VaultSetupError, match="INBOX_API_VAULT_KEYS"):
            edit()
    assert not settings.effective_vault_key_file.exists()
