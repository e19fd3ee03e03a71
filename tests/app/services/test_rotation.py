"""Key rotation: every row moves to the new key, nothing is decrypted, interruptions resume.

A rotation sweeps the whole credentials table, so each test here starts from an empty one
(other tests' rows are sealed under keys these rings do not hold).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.models import Account, Credential
from app.services.credentials import (
    CREDENTIAL_UNREADABLE,
    CredentialUnavailable,
    read_credential,
    store_credential,
)
from app.services.rotation import (
    RotationRefused,
    RotationReport,
    _write_batch,
    credential_counts_by_key,
    rewrap_credentials,
    rotate,
)
from app.services.vault_keys import VaultSetupError
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind
from tests.factories import make_account, make_owner
from vault import KeyRing, Secret, format_keyring_string, generate_key, load_key_file, save_key_file

KINDS = (CredentialKind.IMAP_PASSWORD, CredentialKind.OAUTH_REFRESH_TOKEN)
CLI = [sys.executable, "-m", "app.cli"]


class Interrupted(Exception):
    pass


@pytest.fixture
async def empty(db: Settings) -> None:
    await Credential.all().delete()


async def _seed(ring: KeyRing, accounts: int) -> dict[tuple[int, CredentialKind], str]:
    """Store two credentials for each of ``accounts`` new accounts; return what was stored."""
    made = await make_owner()
    stored = {}
    for n in range(accounts):
        account_id = AccountId((await make_account(made.owner)).id)
        for kind in KINDS:
            value = f"secret-{account_id}-{kind.value}-{n}"
            await store_credential(account_id, kind, value, keyring=ring)
            stored[account_id, kind] = value
    return stored


async def _assert_all_readable(
    ring: KeyRing, stored: dict[tuple[int, CredentialKind], str]
) -> None:
    for (account_id, kind), value in stored.items():
        assert await read_credential(AccountId(account_id), kind, keyring=ring) == Secret(value)


def _sealed_part(blob: bytes) -> bytes:
    # Past version, key id, wrap nonce (12) and wrapped data key (48): the data nonce, the
    # sealed secret and its tag, which a rewrap copies untouched (vault.envelope's layout).
    return blob[2 + blob[1] + 12 + 48 :]


async def test_rotation_moves_every_row_to_the_new_key(empty: None) -> None:
    old = KeyRing([generate_key()])
    stored = await _seed(old, 12)
    before = dict(await Credential.all().values_list("id", "ciphertext"))
    new = old.with_key(generate_key(), primary=True)
    seen: list[tuple[int, int]] = []

    report = await rewrap_credentials(
        new, batch_size=5, progress=lambda r: seen.append((r.done, r.total))
    )

    assert (report.total, report.rewrapped, report.unreadable) == (24, 24, [])
    assert seen == [(5, 24), (10, 24), (15, 24), (20, 24), (24, 24)]
    assert await credential_counts_by_key() == {new.primary_id: 24}
    for credential_id, blob in await Credential.all().values_list("id", "ciphertext"):
        assert bytes(blob) != bytes(before[credential_id])
        assert _sealed_part(bytes(blob)) == _sealed_part(bytes(before[credential_id]))
    await _assert_all_readable(new, stored)
    with pytest.raises(CredentialUnavailable):
        await read_credential(AccountId(next(iter(stored))[0]), KINDS[0], keyring=old)


async def test_an_interrupted_rotation_resumes_with_the_rows_left(empty: None) -> None:
    old = KeyRing([generate_key()])
    stored = await _seed(old, 10)
    new = old.with_key(generate_key(), primary=True)

    def stop_after_first_batch(report: RotationReport) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await rewrap_credentials(new, batch_size=6, progress=stop_after_first_batch)
    assert await credential_counts_by_key() == {old.primary_id: 14, new.primary_id: 6}

    report = await rewrap_credentials(new, batch_size=6)
    assert (report.total, report.rewrapped) == (14, 14)
    assert await credential_counts_by_key() == {new.primary_id: 20}
    await _assert_all_readable(new, stored)
    assert (await rewrap_credentials(new)).total == 0


async def test_rows_under_unknown_keys_are_reported_and_the_rest_continue(empty: None) -> None:
    old, lost = KeyRing([generate_key()]), KeyRing([generate_key()])
    stored = await _seed(old, 3)
    orphaned = await _seed(lost, 2)
    (wrap_damaged, wrap_kind), (body_damaged, body_kind), *_ = stored
    await _flip_byte(wrap_damaged, wrap_kind, lambda blob: 2 + blob[1] + 12 + 5)
    await _flip_byte(body_damaged, body_kind, lambda blob: len(blob) - 5)
    new = old.with_key(generate_key(), primary=True)

    report = await rewrap_credentials(new, batch_size=4)

    assert (report.total, report.rewrapped) == (10, 5)
    failed = {(u.account_id, u.kind): u for u in report.unreadable}
    assert set(failed) == {*orphaned, (wrap_damaged, wrap_kind)}
    assert {failed[key].key_id for key in orphaned} == {lost.primary_id}
    assert failed[wrap_damaged, wrap_kind].key_id == old.primary_id
    assert failed[wrap_damaged, wrap_kind].failure.startswith("does not decrypt")
    for account_id in {a for a, _ in failed}:
        await _assert_marked(account_id)
    assert await credential_counts_by_key() == {
        lost.primary_id: 4,
        old.primary_id: 1,
        new.primary_id: 5,
    }
    # Rotation never decrypts the secret, so damage inside it shows on the next read only.
    with pytest.raises(CredentialUnavailable):
        await read_credential(AccountId(body_damaged), body_kind, keyring=new)
    await _assert_marked(body_damaged)
    del stored[wrap_damaged, wrap_kind], stored[body_damaged, body_kind]
    await _assert_all_readable(new, stored)


async def _flip_byte(account_id: int, kind: CredentialKind, where: Callable[[bytes], int]) -> None:
    row = await Credential.get(account_id=account_id, kind=kind)
    blob = bytearray(row.ciphertext)
    blob[where(bytes(blob))] ^= 0x01
    await Credential.filter(id=row.id).update(ciphertext=bytes(blob))


async def _assert_marked(account_id: int) -> None:
    account = await Account.get(id=account_id)
    assert (account.status, account.status_reason) == (
        AccountStatus.NEEDS_ATTENTION,
        CREDENTIAL_UNREADABLE,
    )


async def test_a_row_rewritten_during_the_batch_is_left_alone(empty: None) -> None:
    ring = KeyRing([generate_key()])
    [(account_id, kind), *_] = await _seed(ring, 1)
    row = await Credential.get(account_id=account_id, kind=kind)
    report = RotationReport(ring.primary_id, 1)

    await _write_batch([(row.id, b"an older blob", b"rewrapped older blob")], "kother", report)

    assert (report.rewrapped, report.changed_meanwhile) == (0, 1)
    assert bytes((await Credential.get(id=row.id)).ciphertext) == bytes(row.ciphertext)


async def test_rotate_adds_a_new_primary_key_to_the_file(empty: None, db: Settings) -> None:
    settings = _with_key_file(db)
    old = load_key_file(settings.effective_vault_key_file)
    stored = await _seed(old, 3)

    report = await rotate(settings, new_key=True, batch_size=2)

    ring = load_key_file(settings.effective_vault_key_file)
    assert ring.key_ids[0] == old.primary_id
    assert len(ring) == 2
    assert ring.primary_id != old.primary_id
    assert (report.primary_id, report.rewrapped) == (ring.primary_id, 6)
    await _assert_all_readable(ring, stored)


async def test_rotate_promotes_a_key_added_before(empty: None, db: Settings) -> None:
    settings = _with_key_file(db)
    old = load_key_file(settings.effective_vault_key_file)
    stored = await _seed(old, 2)
    save_key_file(settings.effective_vault_key_file, old.with_key(generate_key("next")))

    report = await rotate(settings, promote="next")

    assert load_key_file(settings.effective_vault_key_file).primary_id == "next"
    assert report.rewrapped == 4
    assert await credential_counts_by_key() == {"next": 4}
    resumed = await rotate(settings)
    assert resumed.total == 0
    await _assert_all_readable(load_key_file(settings.effective_vault_key_file), stored)


async def test_rotate_with_keys_from_the_environment_only_rewraps(
    empty: None, db: Settings
) -> None:
    old = KeyRing([generate_key()])
    stored = await _seed(old, 2)
    new = old.with_key(generate_key(), primary=True)
    settings = Settings(
        database_url=db.database_url,
        data_dir=db.data_dir,
        vault_keys=format_keyring_string(new),  # type: ignore[arg-type]
    )
    for flags in ({"new_key": True}, {"promote": old.primary_id}):
        with pytest.raises(RotationRefused, match="INBOX_API_VAULT_KEYS"):
            await rotate(settings, **flags)  # type: ignore[arg-type]

    report = await rotate(settings)
    assert (report.primary_id, report.rewrapped) == (new.primary_id, 4)
    await _assert_all_readable(new, stored)


async def test_rotate_stops_before_anything_changes_when_the_key_is_wrong(
    empty: None, db: Settings
) -> None:
    settings = _with_key_file(db)
    real = load_key_file(settings.effective_vault_key_file)
    stored = await _seed(real, 2)
    save_key_file(settings.effective_vault_key_file, KeyRing([generate_key(real.primary_id)]))
    file_before = settings.effective_vault_key_file.read_bytes()

    with pytest.raises(VaultSetupError):
        await rotate(settings, new_key=True)

    assert settings.effective_vault_key_file.read_bytes() == file_before
    accounts = {account_id for account_id, _ in stored}
    assert {a.status for a in await Account.filter(id__in=accounts)} == {AccountStatus.ACTIVE}
    await _assert_all_readable(real, stored)


async def test_rotate_refuses_both_flags_and_bad_batch_sizes(db: Settings) -> None:
    with pytest.raises(RotationRefused):
        await rotate(_with_key_file(db), new_key=True, promote="k1")
    with pytest.raises(RotationRefused):
        await rewrap_credentials(KeyRing([generate_key()]), batch_size=0)


def _with_key_file(db: Settings) -> Settings:
    directory = db.data_dir / f"keys-{os.urandom(4).hex()}"
    directory.mkdir()
    settings = Settings(
        database_url=db.database_url,
        data_dir=db.data_dir,
        vault_key_file=directory / "vault-keys.json",
    )
    save_key_file(settings.effective_vault_key_file, KeyRing([generate_key()]))
    return settings


def test_the_vault_commands(tmp_path: Path) -> None:
    """`inbox-api vault ...` on a fresh embedded data directory, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_API_")}
    env["INBOX_API_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str) -> str:
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "vault-keys.json" in run("vault", "init")
    path = tmp_path / "data" / "vault-keys.json"
    first = json.loads(path.read_text())["primary"]
    run("vault", "add-key", "--key-id", "k-next")
    assert "rewrapped 0/0" in run("vault", "rotate", "--promote", "k-next")
    status = run("vault", "status")
    assert json.loads(path.read_text())["primary"] == "k-next"
    assert f"{path}" in status
    assert "k-next (primary)" in status
    assert first in status
    rotated = run("vault", "rotate", "--new-key", "--batch-size", "10")
    assert json.loads(path.read_text())["primary"] not in (first, "k-next")
    assert "rewrapped" in rotated
