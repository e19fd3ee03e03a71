"""Key rotation: move every sealed credential to the primary key without decrypting any of them.

``inbox-api vault rotate [--new-key | --promote KEY_ID] [--batch-size N]`` runs ``rotate``:

1. The current ring is read and checked against the stored rows (a wrong passphrase stops here,
   before the key file changes or any account is marked).
2. The ring is prepared. With a key file, ``--new-key`` adds a fresh primary key (derived from
   ``INBOX_API_VAULT_PASSPHRASE`` when one is set, else random) and ``--promote KEY_ID`` makes a
   key already in the file primary (one added earlier with ``inbox-api vault add-key``); with
   neither, the file's primary stays. With ``INBOX_API_VAULT_KEYS`` the operator supplies the
   new ring (new primary first, old keys after) and both flags are refused: rotation only
   re-wraps to that ring's primary.
3. Every credential row whose ``key_id`` is not the primary is re-wrapped with ``vault.rewrap``:
   the row's data key is unwrapped with its old key and wrapped with the primary; the sealed
   secret is copied byte for byte and its plaintext never computed. Rows go in id order,
   ``batch_size`` at a time, each batch written in one transaction; progress is reported after
   each batch. A row rewritten meanwhile (``store_credential``) is left as it is: the update
   matches the old ciphertext, so a fresh credential is never replaced by a stale one.
4. A row under a key id the ring lacks, or whose data key does not open, is reported and its
   account marked ``NEEDS_ATTENTION`` (``app.services.credentials``); the others continue.

Resuming needs no state of its own: the ``key_id`` column is the progress. Interrupted at any
point, ``inbox-api vault rotate`` (no flag) continues with the rows still under other keys;
committed batches stay done. Rows that a process with an older ring sealed during the rotation
are picked up the same way. Once ``inbox-api vault status`` counts no row under an old key, the
key can leave the ring.

Other processes: a server or worker whose ring comes from the key file re-reads the file when it
meets a key id its ring lacks, so a running process follows a rotation. With
``INBOX_API_VAULT_KEYS`` every process must run with a ring that holds the new key before the
rotation starts, or it cannot open re-wrapped rows (it fails closed).

This module must never decrypt a credential, nor log key material or blob bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app import clock
from app.models import Credential
from app.services.credentials import (
    associated_data,
    describe_failure,
    mark_credential_unreadable,
    verify_keyring,
)
from app.services.errors import ServiceError
from app.services.vault_keys import (
    add_key_to_file,
    keys_from_environment,
    promote_key_in_file,
    read_keyring,
)
from app.settings import ENV_PREFIX, Settings
from app.types import AccountId, CredentialKind
from vault import DecryptionError, KeyRing, UnknownKeyError, rewrap

DEFAULT_BATCH_SIZE = 500

# The old ciphertext in the WHERE clause leaves a row rewritten meanwhile as it is.
_REWRAP = {
    "sqlite": "UPDATE credentials SET ciphertext = ?, key_id = ?, rotated_at = ? "
    "WHERE id = ? AND ciphertext = ?",
    "postgres": "UPDATE credentials SET ciphertext = $1, key_id = $2, rotated_at = $3 "
    "WHERE id = $4 AND ciphertext = $5",
}


class RotationRefused(ServiceError):
    """The rotation asked for cannot be done with this configuration."""

    code = "ROTATION_REFUSED"


@dataclass(frozen=True, slots=True)
class UnreadableCredential:
    """A row rotation could not re-wrap; its account was marked as needing attention."""

    credential_id: int
    account_id: int
    kind: CredentialKind
    key_id: str
    failure: str


@dataclass(slots=True)
class RotationReport:
    """How far a rotation got: ``done`` of ``total`` rows that were under other keys."""

    primary_id: str
    total: int
    rewrapped: int = 0
    changed_meanwhile: int = 0
    unreadable: list[UnreadableCredential] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.rewrapped + self.changed_meanwhile + len(self.unreadable)


Progress = Callable[[RotationReport], None]


async def rotate(
    settings: Settings,
    *,
    new_key: bool = False,
    promote: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RotationReport:
    """Check the ring, prepare the new primary (see the module docstring), re-wrap every row."""
    if new_key and promote is not None:
        raise RotationRefused("give --new-key or --promote, not both")
    if keys_from_environment(settings) and (new_key or promote is not None):
        raise RotationRefused(
            f"{ENV_PREFIX}VAULT_KEYS is set: put the new key first in it on every process, "
            "then run the rotation without --new-key or --promote"
        )
    await verify_keyring(read_keyring(settings))
    if new_key:
        ring = add_key_to_file(settings, primary=True)
    elif promote is not None:
        ring = promote_key_in_file(settings, promote)
    else:
        ring = read_keyring(settings)
    return await rewrap_credentials(ring, batch_size=batch_size, progress=progress)


async def rewrap_credentials(
    ring: KeyRing, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> RotationReport:
    """Re-wrap every credential not under ``ring``'s primary key, in batches."""
    if batch_size < 1:
        raise RotationRefused("the batch size must be at least 1")
    primary = ring.primary_id
    report = RotationReport(primary, await Credential.exclude(key_id=primary).count())
    after_id = 0
    while True:
        rows = await (
            Credential.filter(id__gt=after_id)
            .exclude(key_id=primary)
            .order_by("id")
            .limit(batch_size)
            .values_list("id", "account_id", "kind", "key_id", "ciphertext")
        )
        if not rows:
            return report
        after_id = rows[-1][0]
        rewrapped: list[tuple[int, bytes, bytes]] = []
        for credential_id, account_id, kind, key_id, blob in rows:
            old = bytes(blob)
            try:
                rewrapped.append(
                    (credential_id, old, rewrap(ring, old, associated_data(account_id, kind)))
                )
            except (UnknownKeyError, DecryptionError) as error:
                report.unreadable.append(
                    UnreadableCredential(
                        credential_id,
                        account_id,
                        CredentialKind(kind),
                        key_id,
                        describe_failure(error),
                    )
                )
                await mark_credential_unreadable(AccountId(account_id), CredentialKind(kind), error)
        await _write_batch(rewrapped, primary, report)
        if progress is not None:
            progress(report)


async def _write_batch(
    rewrapped: list[tuple[int, bytes, bytes]], primary: str, report: RotationReport
) -> None:
    if not rewrapped:
        return
    now = clock.now()
    async with in_transaction() as connection:
        # One statement for the whole batch: per-row ORM updates cost a round trip each.
        await connection.execute_many(
            _REWRAP[connection.capabilities.dialect],
            [[new, primary, now, credential_id, old] for credential_id, old, new in rewrapped],
        )
        written = await Credential.filter(id__in=[row[0] for row in rewrapped]).values_list(
            "id", "ciphertext"
        )
    current = {credential_id: bytes(blob) for credential_id, blob in written}
    done = sum(current.get(credential_id) == new for credential_id, _, new in rewrapped)
    report.rewrapped += done
    report.changed_meanwhile += len(rewrapped) - done


async def credential_counts_by_key() -> dict[str, int]:
    """How many credential rows each key id wraps (``inbox-api vault status``)."""
    rows = await (
        Credential.annotate(rows=Count("id"))
        .group_by("key_id")
        .order_by("key_id")
        .values_list("key_id", "rows")
    )
    return {str(key_id): int(count) for key_id, count in rows}
