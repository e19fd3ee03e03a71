"""A planted credential never shows: not in an API answer, a log line, nor a raw database dump.

A unique canary goes in as an IMAP password and as an OAuth refresh token through the
credentials service; the API is exercised with the owner's token while every response body and
every log record (all loggers at DEBUG) is kept; then the database is read raw (the SQLite file
and its WAL, or ``pg_dump``). The canary must appear nowhere, as text, hex or base64. A marker
stored in clear on purpose must appear everywhere: it proves each place searched was searched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import logging
import re
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from app.models import Credential
from app.services.credentials import CredentialUnavailable, read_credential, store_credential
from app.services.vault_keys import configure_vault
from app.settings import Settings
from app.types import AccountId, CredentialKind
from tests.conftest import GraphQLCall
from tests.factories import make_account, make_owner
from vault import KeyRing, Secret, generate_key

QUERIES = [
    "{ currentToken { scopes } }",
    "{ viewer { name email tokens { name displayPrefix scopes lastUsedAt } } }",
    """{ accounts { id provider address displayName status credentialsSet credentialsRotatedAt
         cachePolicy { retentionDays cacheBodies fetchUncachedBodies }
         sync { phase lastSuccessAt lagSeconds lastErrorCode needsReauthorization } } }""",
    "{ accounts { password } }",
    "{ accounts { credentials { value } } }",
    '{ __type(name: "Account") { fields { name } } }',
]


def _forms(value: str) -> list[bytes]:
    """The value as text and hex, and as standard or URL-safe base64 at each byte alignment."""
    raw = value.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw)
            # Drop the groups that mix in the padding bytes or the neighbours in a larger blob.
            forms.append(encoded[4 if shift else 0 : -4])
    return forms


async def _raw_database(settings: Settings) -> bytes:
    url = settings.effective_database_url
    if settings.is_postgres:
        dumped = await asyncio.to_thread(
            subprocess.run,
            [_pg_dump(), "--no-owner", f"--dbname={url}"],
            check=True,
            capture_output=True,
        )
        return dumped.stdout
    # Read through SQLite itself (the same library as the test's own connection): opening and
    # closing the file with plain open() would drop this process's POSIX locks on it.
    path = url.removeprefix("sqlite://")
    with contextlib.closing(sqlite3.connect(path)) as reader:
        return reader.serialize()


def _pg_dump() -> str:
    found = shutil.which("pg_dump") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
    )
    if found is None:
        pytest.fail("pg_dump not found on PATH nor in /usr/lib/postgresql/*/bin")
    return found


@pytest.fixture
def ring(db: Settings) -> Iterator[KeyRing]:
    ring = KeyRing([generate_key()])
    configure_vault(ring)
    yield ring
    configure_vault(None)


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def test_a_planted_canary_appears_nowhere(
    ring: KeyRing,
    settings: Settings,
    http: httpx.AsyncClient,
    gql: GraphQLCall,
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    canary = "canary-" + secrets.token_hex(16)
    in_clear = "in-clear-" + secrets.token_hex(16)
    bodies: list[bytes] = []

    async def keep_body(response: httpx.Response) -> None:
        bodies.append(await response.aread())

    http.event_hooks["response"].append(keep_body)
    made = await make_owner()
    account = await make_account(made.owner, display_name=in_clear)
    account_id = AccountId(account.id)
    await store_credential(account_id, CredentialKind.IMAP_PASSWORD, canary)
    await store_credential(account_id, CredentialKind.OAUTH_REFRESH_TOKEN, Secret(canary))
    broken = AccountId((await make_account(made.owner)).id)
    await store_credential(broken, CredentialKind.IMAP_PASSWORD, canary)
    await Credential.filter(account_id=broken).update(
        ciphertext=bytes(
            (await Credential.get(account_id=account_id, kind="imap_password")).ciphertext
        )
    )
    logging.getLogger("tests.canary").debug("control line %s", in_clear)

    for query in QUERIES:
        await gql(made.token, query)
    assert await read_credential(account_id, CredentialKind.IMAP_PASSWORD) == Secret(canary)
    with pytest.raises(CredentialUnavailable) as unreadable:
        await read_credential(broken, CredentialKind.IMAP_PASSWORD)

    answers = b"\n".join(bodies)
    logs = "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in every_log_record.records
    ).encode()
    dump = await _raw_database(settings)
    places = {"API answers": answers, "log records": logs, "raw database": dump}
    assert len(bodies) == len(QUERIES)
    assert b'"credentialsSet": true' in answers.replace(b'":true', b'": true')
    for where, content in places.items():
        assert in_clear.encode() in content, f"the control is missing from the {where}"
        for form in _forms(canary):
            assert form not in content, f"the canary shows in the {where}"
    for form in _forms(canary):
        assert form.decode() not in str(unreadable.value)
    assert any(f.startswith(canary.encode()) for f in _forms(canary))
    assert any(f in base64.b64encode(b"xx" + canary.encode() + b"y") for f in _forms(canary))


async def test_the_account_type_exposes_no_credential_field(db: Settings, gql: GraphQLCall) -> None:
    made = await make_owner()
    body = await gql(made.token, '{ __type(name: "Account") { fields { name } } }')
    fields = {field["name"] for field in body["data"]["__type"]["fields"]}
    assert {"id", "address", "credentialsSet", "credentialsRotatedAt"} <= fields
    leaky = re.compile(r"password|secret|token|credential|cipher|key", re.IGNORECASE)
    assert {f for f in fields if leaky.search(f)} == {"credentialsSet", "credentialsRotatedAt"}
