"""Sealed credentials through the database: round trip, binding to the row, failing closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.models import Account, Credential
from app.services.credentials import (
    CREDENTIAL_UNREADABLE,
    CredentialUnavailable,
    associated_data,
    credential_status,
    delete_credentials,
    read_credential,
    start_vault,
    store_credential,
    verify_keyring,
)
from app.services.errors import NotFound, ServiceError
from app.services.vault_keys import VaultSetupError, configure_vault, current_keyring
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind
from tests.factories import make_account, make_owner
from vault import (
    KeyRing,
    Secret,
    blob_key_id,
    format_keyring_string,
    generate_key,
    save_key_file,
    seal,
)

PASSWORD = CredentialKind.IMAP_PASSWORD
REFRESH = CredentialKind.OAUTH_REFRESH_TOKEN


@pytest.fixture
def ring(db: Settings) -> Iterator[KeyRing]:
    """A fresh ring with a random key id (other tests' rows use other ids), installed."""
    ring = KeyRing([generate_key()])
    configure_vault(ring)
    yield ring
    configure_vault(None)


async def _account() -> AccountId:
    made = await make_owner()
    return AccountId((await make_account(made.owner)).id)


async def _stored_blob(account_id: int, kind: CredentialKind) -> bytes:
    return bytes((await Credential.get(account_id=account_id, kind=kind)).ciphertext)


async def _assert_marked(account_id: int) -> None:
    account = await Account.get(id=account_id)
    assert account.status == AccountStatus.NEEDS_ATTENTION
    assert account.status_reason == CREDENTIAL_UNREADABLE


async def test_round_trip_through_the_database(ring: KeyRing) -> None:
    account_id = await _account()
    assert await credential_status(account_id) == (False, None)

    await store_credential(account_id, PASSWORD, "hunter2-imap")
    await store_credential(account_id, REFRESH, Secret("1//refresh-token"))

    assert await read_credential(account_id, PASSWORD) == Secret("hunter2-imap")
    assert await read_credential(account_id, REFRESH) == Secret("1//refresh-token")
    assert await read_credential(account_id, CredentialKind.SMTP_PASSWORD) is None
    rows = await Credential.filter(account_id=account_id).values_list("key_id", "ciphertext")
    assert len(rows) == 2
    for key_id, blob in rows:
        assert key_id == ring.primary_id == blob_key_id(bytes(blob))
        assert b"hunter2" not in bytes(blob)
        assert b"refresh-token" not in bytes(blob)
    is_set, rotated_at = await credential_status(account_id)
    assert is_set
    assert rotated_at is not None
    assert (await Account.get(id=account_id)).status == AccountStatus.ACTIVE


async def test_storing_again_replaces_the_credential(ring: KeyRing) -> None:
    account_id = await _account()
    await store_credential(account_id, REFRESH, "first")
    first = await _stored_blob(account_id, REFRESH)
    await store_credential(account_id, REFRESH, "second")

    assert await Credential.filter(account_id=account_id).count() == 1
    assert await _stored_blob(account_id, REFRESH) != first
    assert await read_credential(account_id, REFRESH) == Secret("second")


async def test_storing_for_a_missing_account_is_not_found(ring: KeyRing) -> None:
    with pytest.raises(NotFound):
        await store_credential(AccountId(2**62), PASSWORD, "x")


async def test_delete_credentials(ring: KeyRing) -> None:
    account_id, other = await _account(), await _account()
    await store_credential(account_id, PASSWORD, "a")
    await store_credential(account_id, REFRESH, "b")
    await store_credential(other, PASSWORD, "c")

    assert await delete_credentials(account_id) == 2
    assert await read_credential(account_id, PASSWORD) is None
    assert await credential_status(account_id) == (False, None)
    assert await read_credential(other, PASSWORD) == Secret("c")


async def test_tampered_ciphertext_fails_closed(
    ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "tamper-me-secret")
    blob = bytearray(await _stored_blob(account_id, PASSWORD))
    blob[-20] ^= 0x01  # inside the sealed secret, past the wrapped data key
    await Credential.filter(account_id=account_id).update(ciphertext=bytes(blob))

    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialUnavailable) as caught:
        await read_credential(account_id, PASSWORD)

    assert isinstance(caught.value, ServiceError)
    assert caught.value.code == "CREDENTIAL_UNREADABLE"
    assert caught.value.account_id == account_id
    await _assert_marked(account_id)
    [record] = [r for r in caplog.records if r.name == "app.services.credentials"]
    assert str(account_id) in record.getMessage()
    assert "tamper-me-secret" not in caplog.text
    assert "tamper-me-secret" not in str(caught.value)


async def test_a_ciphertext_copied_to_another_account_fails(ring: KeyRing) -> None:
    victim, attacker = await _account(), await _account()
    await store_credential(victim, PASSWORD, "victim-password")
    await store_credential(attacker, PASSWORD, "attacker-password")
    await Credential.filter(account_id=attacker, kind=PASSWORD).update(
        ciphertext=await _stored_blob(victim, PASSWORD)
    )

    with pytest.raises(CredentialUnavailable):
        await read_credential(attacker, PASSWORD)
    await _assert_marked(attacker)
    assert await read_credential(victim, PASSWORD) == Secret("victim-password")
    assert (await Account.get(id=victim)).status == AccountStatus.ACTIVE


async def test_a_ciphertext_copied_to_another_kind_fails(ring: KeyRing) -> None:
    account_id = await _account()
    await store_credential(account_id, REFRESH, "refresh")
    await Credential.create(
        account_id=account_id,
        kind=CredentialKind.OAUTH_ACCESS_TOKEN,
        ciphertext=await _stored_blob(account_id, REFRESH),
        key_id=ring.primary_id,
    )
    with pytest.raises(CredentialUnavailable):
        await read_credential(account_id, CredentialKind.OAUTH_ACCESS_TOKEN)


async def test_the_wrong_key_under_the_right_id_fails_closed(ring: KeyRing) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "p")
    impostor = KeyRing([generate_key(ring.primary_id)])

    with pytest.raises(CredentialUnavailable):
        await read_credential(account_id, PASSWORD, keyring=impostor)
    await _assert_marked(account_id)


async def test_an_unknown_key_id_fails_closed(
    ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = await _account()
    await store_credential(account_id, REFRESH, "retired-key-secret")
    configure_vault(KeyRing([generate_key()]))

    caplog.set_level(logging.WARNING)
    with pytest.raises(CredentialUnavailable):
        await read_credential(account_id, REFRESH)
    await _assert_marked(account_id)
    assert repr(ring.primary_id) in caplog.text
    assert "retired-key-secret" not in caplog.text


async def test_a_disabled_account_stays_disabled(ring: KeyRing) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "p")
    await Account.filter(id=account_id).update(status=AccountStatus.DISABLED)
    with pytest.raises(CredentialUnavailable):
        await read_credential(account_id, PASSWORD, keyring=KeyRing([generate_key()]))
    assert (await Account.get(id=account_id)).status == AccountStatus.DISABLED


async def test_a_key_added_to_the_file_after_start_up_is_found(
    db: Settings, tmp_path: Path
) -> None:
    """A running server follows `inbox-api vault rotate`: it re-reads a changed key file."""
    settings = Settings(
        database_url=db.database_url,
        data_dir=tmp_path,
        vault_key_file=tmp_path / "keys.json",
    )
    old = KeyRing([generate_key()])
    save_key_file(settings.effective_vault_key_file, old)
    configure_vault(old, reload_from=settings)
    try:
        account_id = await _account()
        new = old.with_key(generate_key(), primary=True)
        save_key_file(settings.effective_vault_key_file, new)
        await store_credential(account_id, PASSWORD, "after-rotation", keyring=new)

        assert await read_credential(account_id, PASSWORD) == Secret("after-rotation")
        assert current_keyring().primary_id == new.primary_id
    finally:
        configure_vault(None)


async def test_verify_keyring_rejects_a_key_that_opens_nothing(ring: KeyRing) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "p")
    await verify_keyring(ring)

    with pytest.raises(VaultSetupError, match=repr(ring.primary_id)):
        await verify_keyring(KeyRing([generate_key(ring.primary_id)]))


async def test_verify_keyring_accepts_a_key_when_one_sampled_row_is_damaged(
    ring: KeyRing,
) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "p")
    await store_credential(account_id, REFRESH, "r")
    await Credential.filter(account_id=account_id, kind=REFRESH).update(
        ciphertext=seal(ring, "r", associated_data(account_id, PASSWORD))
    )
    await verify_keyring(ring)


async def test_verify_keyring_names_stored_key_ids_the_ring_lacks(
    ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = await _account()
    await store_credential(account_id, PASSWORD, "p")
    caplog.set_level(logging.WARNING)
    await verify_keyring(KeyRing([generate_key()]))
    assert ring.primary_id in caplog.text


async def test_start_vault_loads_checks_and_installs(db: Settings, tmp_path: Path) -> None:
    key = generate_key()
    settings = Settings(
        database_url=db.database_url,
        data_dir=tmp_path,
        vault_keys=format_keyring_string(KeyRing([key])),  # type: ignore[arg-type]
    )
    try:
        started = await start_vault(settings)
        assert current_keyring() is started
        assert started.primary_id == key.key_id
    finally:
        configure_vault(None)
