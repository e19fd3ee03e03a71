"""requestExport -> a background build -> GET /exports/<id>: the caller's data only, every cached
message as a parseable .eml, and no credential, token digest or raw token anywhere in the zip.
The download refuses other owners (like an unknown id), tokens without the owner scope, and
exports past their expiry; the purge then deletes the file."""

from __future__ import annotations

import email
import email.policy
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import httpx

from app import clock
from app.auth.tokens import token_digest
from app.models import ExportJob, UsageLogEntry
from app.services.credentials import store_credential
from app.services.export import archive_path, run_pending_exports
from app.services.purge import purge
from app.settings import Settings
from app.types import AccountId, Action, CredentialKind, ExportStatus, Provider
from tests.conftest import GraphQLCall
from tests.factories import address, make_account, make_message, make_owner, make_token
from tests.test_canary import _forms as encoded_forms
from vault import KeyRing

REQUEST = """mutation { requestExport { __typename
  ... on ExportRequested { export { id status downloadUrl } }
  ... on MutationError { code } } }"""
EXPORTS = "{ exports { id status progress messagesTotal messagesDone sizeBytes downloadUrl } }"
RAW = (
    b"From: Ada <ada@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Original bytes\r\n"
    b"Message-ID: <raw-1@example.com>\r\nDate: Fri, 01 Mar 2024 08:00:00 +0000\r\n\r\n"
    b"The original body.\r\n"
)


async def build_pending(settings: Settings) -> None:
    """Run the worker's export step until nothing is pending (other tests' jobs included)."""
    for _ in range(20):
        if not await run_pending_exports(settings, "privacy-test-worker"):
            return


async def download(http: httpx.AsyncClient, url: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await http.get(url.removeprefix("http://127.0.0.1:8000"), headers=headers)


async def test_export_holds_the_callers_data_and_no_secret(
    db: Settings, gql: GraphQLCall, http: httpx.AsyncClient, ring: KeyRing
) -> None:
    canary = "canary-export-" + ring.primary_id
    made, other = await make_owner(), await make_owner()
    account = await make_account(made.owner, provider=Provider.IMAP, address="me@example.com")
    await store_credential(AccountId(account.id), CredentialKind.IMAP_PASSWORD, canary)
    raw = await make_message(account, body={"text_body": "x", "raw_mime": RAW})
    rebuilt = await make_message(
        account,
        subject="Rebuilt\r\nBcc: injected@example.com",
        from_addresses=[address("carol@example.com", "Carol, C."), address("not an address")],
        to_addresses=[address("dörte@exämple.com", "Dörte")],
        references=["<a@x>", "<b@x>"],
        body={"text_body": "plain part", "html_body": "<p>html part</p>"},
    )
    bare = await make_message(account, subject="Envelope only")
    theirs = await make_account(other.owner)
    await make_message(theirs, subject="OTHER OWNER SECRET SUBJECT", body={"text_body": "no"})
    await store_credential(AccountId(theirs.id), CredentialKind.OAUTH_REFRESH_TOKEN, canary)
    for name in ("First", "Second"):
        await UsageLogEntry.create(
            owner_id=made.owner.id,
            at=clock.now(),
            operation_name=name,
            operation_type="query",
            status="ok",
            duration_ms=1,
        )

    requested = (await gql(made.token, REQUEST))["data"]["requestExport"]
    again = (await gql(made.token, REQUEST))["data"]["requestExport"]
    await build_pending(db)
    listed = (await gql(made.token, EXPORTS))["data"]["exports"]
    response = await download(http, listed[0]["downloadUrl"], made.token)

    assert requested["__typename"] == "ExportRequested"
    assert requested["export"]["status"] == "PENDING"
    assert requested["export"]["downloadUrl"] is None
    assert again == {"__typename": "MutationError", "code": "CONFLICT"}
    assert [e["id"] for e in listed] == [requested["export"]["id"]]
    assert listed[0]["status"] == "READY"
    assert (listed[0]["messagesTotal"], listed[0]["messagesDone"], listed[0]["progress"]) == (
        3,
        3,
        1.0,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["cache-control"] == "private, no-store"
    assert listed[0]["sizeBytes"] == len(response.content)

    archive = zipfile.ZipFile(io.BytesIO(response.content))
    members = {name: archive.read(name) for name in archive.namelist()}
    everything = b"\n".join(members.values())
    for form in encoded_forms(canary):
        assert form not in everything
    for token in (made.token, other.token):
        assert token.encode() not in everything
        assert token_digest(token).encode() not in everything
    assert b"OTHER OWNER" not in everything
    assert other.owner.email.encode() not in everything

    owner = json.loads(members["owner.json"])
    assert owner["profile"]["email"] == made.owner.email
    assert [a["id"] for a in owner["accounts"]] == [account.id]
    assert owner["accounts"][0]["credentials_set"] is True
    assert [t["display_prefix"] for t in owner["tokens"]] == [made.token[:11]]
    assert all("digest" not in t for t in owner["tokens"])
    assert [u["operation_name"] for u in owner["usage_log"]] == ["First", "Second"]
    manifest = {m["provider_id"]: m for m in json.loads(members["manifest.json"])["messages"]}
    assert set(manifest) == {raw.provider_id, rebuilt.provider_id, bare.provider_id}
    assert manifest[raw.provider_id]["source"] == "raw_mime"
    assert manifest[rebuilt.provider_id]["source"] == "reconstructed"
    assert (manifest[bare.provider_id]["source"], manifest[bare.provider_id]["body_cached"]) == (
        "reconstructed",
        False,
    )
    eml = {pid: members[entry["path"]] for pid, entry in manifest.items()}
    assert set(members) == {"owner.json", "manifest.json", *(m["path"] for m in manifest.values())}
    assert eml[raw.provider_id] == RAW
    parsed = {
        pid: email.message_from_bytes(data, policy=email.policy.default)
        for pid, data in eml.items()
    }
    assert all(not message.defects for message in parsed.values())
    again_built = parsed[rebuilt.provider_id]
    assert again_built["Subject"] == "Rebuilt Bcc: injected@example.com"
    assert again_built["Bcc"] is None
    assert again_built["From"].addresses[0].addr_spec == "carol@example.com"
    assert again_built["References"] == "<a@x> <b@x>"
    assert again_built.get_body(("plain",)).get_content().strip() == "plain part"
    assert again_built.get_body(("html",)).get_content().strip() == "<p>html part</p>"
    assert parsed[bare.provider_id]["Subject"] == "Envelope only"


async def test_download_is_refused_to_others_and_after_expiry(
    db: Settings, gql: GraphQLCall, http: httpx.AsyncClient
) -> None:
    made, other = await make_owner(), await make_owner()
    no_owner_scope = await make_token(made.owner, actions={Action.MESSAGES_CONTENT})
    await make_message(await make_account(made.owner), body={"text_body": "mine"})
    await gql(made.token, REQUEST)
    await build_pending(db)
    url = (await gql(made.token, EXPORTS))["data"]["exports"][0]["downloadUrl"]
    job = await ExportJob.get(owner_id=made.owner.id)
    unknown = url.rsplit("/", 1)[0] + "/" + "A" * len(job.archive_id)

    answers: dict[str, Any] = {
        "other owner": await download(http, url, other.token),
        "unknown id": await download(http, unknown, made.token),
        "no owner scope": await download(http, url, no_owner_scope),
        "no token": await download(http, url, None),
        "owner": await download(http, url, made.token),
    }

    assert {k: r.status_code for k, r in answers.items()} == {
        "other owner": 404,
        "unknown id": 404,
        "no owner scope": 403,
        "no token": 401,
        "owner": 200,
    }
    assert answers["other owner"].json() == answers["unknown id"].json()
    assert (await gql(other.token, EXPORTS))["data"]["exports"] == []

    clock.travel(timedelta(hours=25))
    expired = await download(http, url, made.token)
    listed = (await gql(made.token, EXPORTS))["data"]["exports"]
    await purge(db)

    assert expired.status_code == 410
    assert expired.json()["errors"][0]["extensions"]["code"] == "EXPORT_EXPIRED"
    assert (listed[0]["status"], listed[0]["downloadUrl"]) == ("EXPIRED", None)
    assert not await ExportJob.filter(owner_id=made.owner.id).exists()
    assert not archive_path(db, job.archive_id).exists()
    assert (await download(http, url, made.token)).status_code == 404
    assert (await gql(made.token, EXPORTS))["data"]["exports"] == []


async def test_export_of_a_token_limited_to_one_account_holds_that_account_only(
    db: Settings, http: httpx.AsyncClient, gql: GraphQLCall
) -> None:
    made = await make_owner()
    first, second = await make_account(made.owner), await make_account(made.owner)
    await make_message(first, subject="first account")
    await make_message(second, subject="second account")
    narrow = await make_token(made.owner, actions={Action.OWNER}, account_ids=[first.id])

    await gql(narrow, REQUEST)
    await build_pending(db)
    url = (await gql(narrow, EXPORTS))["data"]["exports"][0]["downloadUrl"]
    archive = zipfile.ZipFile(io.BytesIO((await download(http, url, narrow)).content))
    owner = json.loads(archive.read("owner.json"))

    assert [a["id"] for a in owner["accounts"]] == [first.id]
    assert b"second account" not in b"".join(archive.read(n) for n in archive.namelist())
    job = await ExportJob.get(owner_id=made.owner.id)
    assert job.status == ExportStatus.READY
    assert job.account_ids == [first.id]
