"""Sealed mailbox credentials: store, read and delete them, and say whether any is set.

Every IMAP/SMTP password and OAuth token of an account is stored only as a vault blob
(AES-256-GCM envelope, ``app.models.Credential``) beside the id of the key that wraps it. The
associated data ``inbox-api:credential:<account id>:<kind>`` binds a blob to its row and purpose:
copied to another account or kind, it does not open.

Reads fail closed. A blob under a key id the ring lacks (also after re-reading a key file that
changed, see ``app.services.vault_keys``) or one that does not decrypt is never guessed at: the
account is marked ``NEEDS_ATTENTION`` with reason ``CREDENTIAL_UNREADABLE``, one warning names
the account, the kind and the key id, and the caller gets ``CredentialUnavailable``.

``start_vault(settings)`` is what entry points call once: load the key ring, check that each of
its keys opens the rows stored under it, install it.

This module must never log, return (other than as a ``vault.Secret``) or put into an error a
credential in clear, and never decrypts anything to check or rotate keys.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import NamedTuple

from app import clock
from app.models import Account, Credential
from app.services.errors import NotFound, ServiceError
from app.services.vault_keys import (
    VaultSetupError,
    configure_vault,
    current_keyring,
    load_keyring,
    refreshed_keyring,
)
from app.settings import Settings
from app.types import AccountId, AccountStatus, CredentialKind
from vault import DecryptionError, KeyRing, Secret, UnknownKeyError, open_sealed, rewrap, seal

logger = logging.getLogger(__name__)

CREDENTIAL_UNREADABLE = "CREDENTIAL_UNREADABLE"
VERIFY_SAMPLE = 3


class CredentialUnavailable(ServiceError):
    """A stored credential cannot be opened; the account now needs attention."""

    code = CREDENTIAL_UNREADABLE

    def __init__(self, account_id: AccountId, kind: CredentialKind) -> None:
        super().__init__(
            "the stored credentials of this account cannot be read; reconnect the account"
        )
        self.account_id = account_id
        self.kind = kind


class CredentialStatus(NamedTuple):
    """What the API may say about an account's credentials: whether set, and when written."""

    is_set: bool
    rotated_at: datetime | None


def associated_data(account_id: int, kind: CredentialKind | str) -> bytes:
    """The associated data that binds a sealed credential to its account and kind."""
    return f"inbox-api:credential:{account_id}:{CredentialKind(kind).value}".encode()


async def store_credential(
    account_id: AccountId,
    kind: CredentialKind,
    secret: Secret | str | bytes,
    *,
    keyring: KeyRing | None = None,
) -> None:
    """Seal ``secret`` under the primary key and store it as the account's ``kind``."""
    ring = current_keyring() if keyring is None else keyring
    if not await Account.exists(id=account_id):
        raise NotFound("account not found")
    row = Credential(
        account_id=account_id,
        kind=kind,
        ciphertext=seal(ring, secret, associated_data(account_id, kind)),
        key_id=ring.primary_id,
        rotated_at=clock.now(),
    )
    # One upsert: concurrent writers of the same credential cannot collide; the last one wins.
    await Credential.bulk_create(
        [row],
        on_conflict=["account_id", "kind"],
        update_fields=["ciphertext", "key_id", "rotated_at"],
    )


async def read_credential(
    account_id: AccountId, kind: CredentialKind, *, keyring: KeyRing | None = None
) -> Secret | None:
    """Open the account's ``kind`` credential; None if none is stored.

    Raises ``CredentialUnavailable`` (and marks the account) if it is stored but cannot be
    opened with the key ring.
    """
    row = await Credential.get_or_none(account_id=account_id, kind=kind)
    if row is None:
        return None
    blob = bytes(row.ciphertext)
    data = associated_data(account_id, kind)
    try:
        try:
            return open_sealed(current_keyring() if keyring is None else keyring, blob, data)
        except UnknownKeyError:
            if keyring is not None:
                raise
            # The key file may have gained the key since start-up (`inbox-api vault rotate`).
            return open_sealed(await refreshed_keyring(), blob, data)
    except (UnknownKeyError, DecryptionError) as error:
        await mark_credential_unreadable(account_id, kind, error)
        raise CredentialUnavailable(account_id, kind) from None


async def delete_credentials(account_id: AccountId) -> int:
    """Delete every credential of the account; returns how many rows went."""
    return await Credential.filter(account_id=account_id).delete()


async def credential_status(account_id: AccountId) -> CredentialStatus:
    """Whether the account has credentials stored and when they were last written or re-wrapped."""
    latest = await Credential.filter(account_id=account_id).order_by("-rotated_at").first()
    return CredentialStatus(
        is_set=latest is not None, rotated_at=None if latest is None else latest.rotated_at
    )


async def mark_credential_unreadable(
    account_id: AccountId, kind: CredentialKind, error: UnknownKeyError | DecryptionError
) -> None:
    """Fail closed: mark the account as needing attention and say why in one log line."""
    await (
        Account.filter(id=account_id)
        .exclude(status=AccountStatus.DISABLED)
        .update(status=AccountStatus.NEEDS_ATTENTION, status_reason=CREDENTIAL_UNREADABLE)
    )
    logger.warning(
        "credential %s of account %s cannot be opened (%s); account marked %s",
        CredentialKind(kind).value,
        account_id,
        describe_failure(error),
        AccountStatus.NEEDS_ATTENTION.value,
    )


async def verify_keyring(ring: KeyRing) -> None:
    """Check that each key of ``ring`` opens the data keys of a few rows sealed under it.

    A key that opens none of its sampled rows is the wrong key or passphrase; saying so at
    start-up (``VaultSetupError``) beats marking every account on first use. Key ids stored but
    absent from the ring are logged: their accounts will need attention.
    """
    for key_id in ring.key_ids:
        rows = await (
            Credential.filter(key_id=key_id)
            .order_by("-id")
            .limit(VERIFY_SAMPLE)
            .values_list("account_id", "kind", "ciphertext")
        )
        as_primary = ring.promote(key_id)
        if rows and not any(_unwraps(as_primary, a, k, bytes(c)) for a, k, c in rows):
            raise VaultSetupError(
                f"vault key {key_id!r} does not open the credentials stored under it: it (or the "
                "passphrase it is derived from) is not the key they were sealed with"
            )
    stored = await Credential.all().distinct().values_list("key_id", flat=True)
    missing = sorted({str(key_id) for key_id in stored} - set(ring.key_ids))
    if missing:
        logger.warning(
            "credentials are stored under vault key ids the key ring lacks (%s); their accounts "
            "will need attention",
            ", ".join(missing),
        )


async def start_vault(settings: Settings) -> KeyRing:
    """Load the key ring, check it against the stored credentials and install it."""
    ring = await asyncio.to_thread(load_keyring, settings)
    await verify_keyring(ring)
    configure_vault(ring, reload_from=settings)
    return ring


def describe_failure(error: UnknownKeyError | DecryptionError) -> str:
    """Why a credential does not open, naming a key id at most."""
    if isinstance(error, UnknownKeyError):
        return f"key id {error.key_id!r} is not in the key ring"
    return "does not decrypt: altered, sealed for another row, or under another key"


def _unwraps(ring: KeyRing, account_id: int, kind: CredentialKind | str, blob: bytes) -> bool:
    """Whether ``ring`` opens the data key of ``blob`` (the credential is not decrypted)."""
    try:
        rewrap(ring, blob, associated_data(account_id, kind))
    except (UnknownKeyError, DecryptionError):
        return False
    return True
