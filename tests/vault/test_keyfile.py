import base64
import json
import os
import stat
from pathlib import Path

import pytest

from vault.errors import KeyRingError
from vault.keyfile import create_key_file, load_key_file, save_key_file
from vault.keyring import KeyRing
from vault.keys import generate_key
from vault.passphrase import ARGON2ID_INTERACTIVE

PASSPHRASE = "correct horse battery staple"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def material_of(ring: KeyRing) -> dict[str, bytes]:
    return {key.key_id: key.reveal_material() for key in ring}


def test_create_writes_an_owner_only_file_with_one_primary_key(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"

    ring = create_key_file(path, key_id="k1")

    assert mode_of(path) == 0o600
    assert ring.key_ids == ("k1",)
    assert material_of(load_key_file(path)) == material_of(ring)


def test_create_gives_a_fresh_key_each_time(tmp_path: Path) -> None:
    first = create_key_file(tmp_path / "a.json")
    second = create_key_file(tmp_path / "b.json")

    assert first.primary.reveal_material() != second.primary.reveal_material()


def test_create_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        create_key_file(tmp_path / "vault.json")
    finally:
        os.umask(previous)

    assert mode_of(tmp_path / "vault.json") == 0o600


def test_create_refuses_to_overwrite_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    original = create_key_file(path)

    with pytest.raises(KeyRingError, match="already exists"):
        create_key_file(path)

    assert material_of(load_key_file(path)) == material_of(original)
    assert sorted(tmp_path.iterdir()) == [path]


def test_save_replaces_the_file_and_keeps_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    ring = create_key_file(path, key_id="k1")
    rotated = ring.with_key(generate_key("k2"), primary=True)

    save_key_file(path, rotated)

    reloaded = load_key_file(path)
    assert reloaded.primary_id == "k2"
    assert material_of(reloaded) == material_of(rotated)
    assert mode_of(path) == 0o600
    assert sorted(tmp_path.iterdir()) == [path]


def test_the_file_format_is_documented_json(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    ring = create_key_file(path, key_id="k1")

    document = json.loads(path.read_text())

    assert document == {
        "format": "inbox-api-vault-keyring",
        "version": 1,
        "primary": "k1",
        "keys": [{"id": "k1", "key": base64.b64encode(ring.primary.reveal_material()).decode()}],
    }


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610])
def test_a_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "vault.json"
    create_key_file(path)
    path.chmod(mode)

    with pytest.raises(KeyRingError, match="chmod 600") as caught:
        load_key_file(path)

    assert f"{mode:04o}" in str(caught.value)


def test_a_read_only_owner_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    ring = create_key_file(path)
    path.chmod(0o400)

    assert material_of(load_key_file(path)) == material_of(ring)


def test_a_missing_file_is_a_key_ring_error(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="cannot open key file"):
        load_key_file(tmp_path / "absent.json")


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)

    with pytest.raises(KeyRingError, match="not a regular file"):
        load_key_file(directory)


def write_owner_only(path: Path, content: str) -> Path:
    path.write_text(content)
    path.chmod(0o600)
    return path


def test_a_file_that_is_not_json_is_refused_without_quoting_it(tmp_path: Path) -> None:
    content = '{"keys": [{"id": "k1", "key": "c2VjcmV0LWtleS1tYXRlcmlhbA=="'
    path = write_owner_only(tmp_path / "vault.json", content)

    with pytest.raises(KeyRingError, match="not valid UTF-8 JSON") as caught:
        load_key_file(path)

    assert "c2VjcmV0" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a 'inbox-api-vault-keyring' document"),
        ({"format": "other"}, "not a 'inbox-api-vault-keyring' document"),
        ({"format": "inbox-api-vault-keyring", "version": 2}, "version"),
        ({"format": "inbox-api-vault-keyring", "version": 1, "keys": []}, "no primary"),
        ({"format": "inbox-api-vault-keyring", "version": 1, "primary": "k1"}, "no keys"),
        (
            {"format": "inbox-api-vault-keyring", "version": 1, "primary": "k1", "keys": [{}]},
            "no id",
        ),
        (
            {
                "format": "inbox-api-vault-keyring",
                "version": 1,
                "primary": "k1",
                "keys": [{"id": "k1", "key": "AAAA", "note": "x"}],
            },
            "exactly one of",
        ),
        (
            {
                "format": "inbox-api-vault-keyring",
                "version": 1,
                "primary": "k2",
                "keys": [{"id": "k1", "key": base64.b64encode(bytes(32)).decode()}],
            },
            "lacks that key",
        ),
        (
            {
                "format": "inbox-api-vault-keyring",
                "version": 1,
                "primary": "k1",
                "keys": [{"id": "k1", "argon2id": {"salt": "AAAA", "opslimit": "4"}}],
            },
            "malformed argon2id",
        ),
    ],
)
def test_malformed_key_files_are_refused(tmp_path: Path, document: object, message: str) -> None:
    path = write_owner_only(tmp_path / "vault.json", json.dumps(document))

    with pytest.raises(KeyRingError, match=message):
        load_key_file(path)


def test_a_passphrase_key_file_stores_the_salt_and_never_the_key(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"

    ring = create_key_file(path, key_id="p1", passphrase=PASSPHRASE, limits=ARGON2ID_INTERACTIVE)

    content = path.read_text()
    assert base64.b64encode(ring.primary.reveal_material()).decode() not in content
    assert PASSPHRASE not in content
    (entry,) = json.loads(content)["keys"]
    assert entry["id"] == "p1"
    assert set(entry["argon2id"]) == {"salt", "opslimit", "memlimit"}
    assert entry["argon2id"]["opslimit"] == ARGON2ID_INTERACTIVE.opslimit
    assert entry["argon2id"]["memlimit"] == ARGON2ID_INTERACTIVE.memlimit


def test_a_passphrase_key_file_gives_the_same_key_with_the_same_passphrase(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vault.json"
    ring = create_key_file(path, passphrase=PASSPHRASE, limits=ARGON2ID_INTERACTIVE)

    assert material_of(load_key_file(path, passphrase=PASSPHRASE)) == material_of(ring)
    wrong = load_key_file(path, passphrase="wrong horse battery staple")
    assert material_of(wrong) != material_of(ring)


def test_a_passphrase_key_file_needs_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    create_key_file(path, key_id="p1", passphrase=PASSPHRASE, limits=ARGON2ID_INTERACTIVE)

    with pytest.raises(KeyRingError, match="'p1' is derived from a passphrase"):
        load_key_file(path)


def test_random_and_passphrase_keys_live_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    ring = create_key_file(path, key_id="p1", passphrase=PASSPHRASE, limits=ARGON2ID_INTERACTIVE)
    save_key_file(path, ring.with_key(generate_key("r2"), primary=True))

    reloaded = load_key_file(path, passphrase=PASSPHRASE)

    assert reloaded.primary_id == "r2"
    assert reloaded.get("p1").reveal_material() == ring.get("p1").reveal_material()
    assert reloaded.get("p1").derivation == ring.get("p1").derivation
