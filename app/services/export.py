"""The owner's right of access and portability: a zip of everything we hold about them.

``request_export`` records an ``ExportJob`` (one at a time per owner); a worker builds it with
``run_pending_exports`` (``app.services.schedule``) and the owner downloads it from
``/exports/<archive id>`` (``app.server.exports``) with an owner-scoped token until it expires
(``EXPORT_LIFETIME`` after it is ready); then the purge deletes the file and the row. The zip::

    owner.json       profile; accounts with their cache policy and whether credentials are set;
                     folders; token metadata (name, prefix, scopes, dates); the usage log
    manifest.json    one entry per message: its .eml path, account, provider id, flags, folders,
                     attachments (metadata), and "source": "raw_mime" (the cached original bytes)
                     or "reconstructed" (built with the stdlib email package from the cached
                     envelope and bodies; "body_cached" says whether a body was there)
    messages/<account id>/<message id>.eml

Files live in ``<data_dir>/exports`` (mode 0700; never a folder the server serves), named by a
random ``archive_id`` that is also the download URL's last segment. A job is built under a
lease (``lease_owner``): a worker that lost it, or whose job was deleted meanwhile (termination),
stops and removes its partial file. Progress is ``messages_done`` of ``messages_total``.

This module must never put into an archive a credential (sealed or not), a token digest or a raw
token, never read the ``credentials`` table beyond whether a row exists, never export an account
the requesting token could not touch, and never call a provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import json
import logging
import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import Group
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any

from app import clock
from app.auth.principal import Principal
from app.models import (
    Account,
    ApiToken,
    Attachment,
    Credential,
    ExportJob,
    Folder,
    Message,
    MessageBody,
    Owner,
    UsageLogEntry,
)
from app.services.errors import Conflict, NotFound
from app.settings import Settings
from app.types import ExportStatus, OwnerId

logger = logging.getLogger(__name__)

EXPORT_LIFETIME = timedelta(hours=24)
LEASE = timedelta(minutes=5)
FORMAT = "inbox-api-export/1"
ENVELOPE_BATCH = 200
BODY_BATCH = 20
USAGE_PAGE = 1000
_ACTIVE = (ExportStatus.PENDING, ExportStatus.RUNNING)
_ARCHIVE_SUFFIX = ".zip"
_PARTIAL_SUFFIX = ".zip.part"


class ExportAbandoned(Exception):
    """The job was deleted or taken over by another worker while this one built it."""


@dataclass(frozen=True, slots=True)
class Archive:
    """A ready export's file, for the download route."""

    path: Path
    filename: str
    size: int


def exports_dir(settings: Settings) -> Path:
    """Where archives are written: inside the data directory, readable by this user only."""
    folder = settings.data_dir / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def archive_path(settings: Settings, archive_id: str) -> Path:
    return exports_dir(settings) / f"{archive_id}{_ARCHIVE_SUFFIX}"


def partial_path(settings: Settings, archive_id: str) -> Path:
    return exports_dir(settings) / f"{archive_id}{_PARTIAL_SUFFIX}"


def archive_id_of(file: Path) -> str:
    """The archive id a file in the exports folder belongs to (finished or partial)."""
    return file.name.split(".", 1)[0]


def status_of(job: ExportJob) -> ExportStatus:
    """The stored status, or EXPIRED for a job past its expiry."""
    if job.expires_at <= clock.now():
        return ExportStatus.EXPIRED
    return job.status


async def request_export(principal: Principal) -> ExportJob:
    """Record a new export of the principal's owner, limited to the accounts it may touch."""
    owner_id = principal.owner_id
    if await ExportJob.filter(
        owner_id=owner_id, status__in=_ACTIVE, expires_at__gt=clock.now()
    ).exists():
        raise Conflict("an export is already being prepared")
    now = clock.now()
    return await ExportJob.create(
        owner_id=owner_id,
        archive_id=secrets.token_urlsafe(24),
        account_ids=None if principal.account_ids is None else sorted(principal.account_ids),
        created_at=now,
        expires_at=now + EXPORT_LIFETIME,
    )


async def list_exports(owner_id: OwnerId) -> list[ExportJob]:
    return await ExportJob.filter(owner_id=owner_id).order_by("-created_at", "-id")


async def ready_archive(settings: Settings, principal: Principal, archive_id: str) -> Archive:
    """The file of a ready, unexpired export the principal may download; NotFound otherwise
    (also for another owner's export, or one covering accounts the token may not touch)."""
    job = await ExportJob.get_or_none(archive_id=archive_id, owner_id=principal.owner_id)
    if job is None or not _covers(principal, job.account_ids):
        raise NotFound("export not found")
    if status_of(job) == ExportStatus.EXPIRED:
        raise Conflict("this export has expired", code="EXPORT_EXPIRED")
    if job.status != ExportStatus.READY:
        raise Conflict("this export is not ready yet", code="EXPORT_NOT_READY")
    path = archive_path(settings, job.archive_id)
    if not path.is_file():
        raise NotFound("export not found")
    stamp = job.created_at.strftime("%Y%m%d-%H%M%S")
    return Archive(path, f"inbox-api-export-{stamp}.zip", path.stat().st_size)


def _covers(principal: Principal, account_ids: list[int] | None) -> bool:
    if principal.account_ids is None:
        return True
    return account_ids is not None and set(account_ids) <= principal.account_ids


async def delete_owner_exports(settings: Settings, owner_id: OwnerId) -> int:
    """Delete every export of the owner, files first; returns how many rows went."""
    archive_ids = await ExportJob.filter(owner_id=owner_id).values_list("archive_id", flat=True)
    remove_archive_files(settings, [str(a) for a in archive_ids])
    return await ExportJob.filter(owner_id=owner_id).delete()


def remove_archive_files(settings: Settings, archive_ids: Iterable[str]) -> int:
    """Delete the finished and partial files of these archives; returns how many existed."""
    removed = 0
    for archive_id in archive_ids:
        for path in (archive_path(settings, archive_id), partial_path(settings, archive_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


# -- building -------------------------------------------------------------------------------


async def run_pending_exports(settings: Settings, worker_id: str, *, limit: int = 1) -> int:
    """Build up to ``limit`` pending exports (or ones whose builder's lease ran out)."""
    built = 0
    for _ in range(limit):
        job = await _claim(worker_id)
        if job is None:
            break
        try:
            await build_export(settings, job, worker_id)
        except ExportAbandoned:
            remove_archive_files(settings, [job.archive_id])
            logger.info("export %s abandoned (deleted or taken over)", job.id)
            continue
        except Exception as error:
            remove_archive_files(settings, [job.archive_id])
            logger.error("export %s failed (%s)", job.id, type(error).__name__)
            await ExportJob.filter(id=job.id, lease_owner=worker_id).update(
                status=ExportStatus.FAILED, error_code="INTERNAL_ERROR", finished_at=clock.now()
            )
            continue
        built += 1
    return built


async def _claim(worker_id: str) -> ExportJob | None:
    now = clock.now()
    candidates = await (
        ExportJob.filter(expires_at__gt=now, owner__terminated_at__isnull=True)
        .filter(status__in=_ACTIVE)
        .order_by("created_at", "id")
        .limit(10)
    )
    for job in candidates:
        if job.status == ExportStatus.RUNNING and (
            job.lease_expires_at is not None and job.lease_expires_at > now
        ):
            continue
        # The conditional update is the claim: of two workers, only one changes the row.
        claimed = await ExportJob.filter(
            id=job.id, status=job.status, lease_owner=job.lease_owner
        ).update(status=ExportStatus.RUNNING, lease_owner=worker_id, lease_expires_at=now + LEASE)
        if claimed:
            return await ExportJob.get(id=job.id)
    return None


async def build_export(settings: Settings, job: ExportJob, worker_id: str) -> None:
    """Write the archive of ``job`` (claimed by ``worker_id``) and mark it ready."""
    owner = await Owner.get_or_none(id=job.owner_id, terminated_at=None)
    if owner is None:
        raise ExportAbandoned(job.id)
    accounts = Account.filter(owner_id=owner.id)
    if job.account_ids is not None:
        accounts = accounts.filter(id__in=[int(a) for a in job.account_ids])
    account_rows = await accounts.order_by("id")
    account_ids = [a.id for a in account_rows]
    total = await Message.filter(account_id__in=account_ids).count() if account_ids else 0
    await _progress(job, worker_id, messages_total=total, messages_done=0)
    partial = partial_path(settings, job.archive_id)
    done = 0
    # Manifest entries wait in an unnamed file (gone with the process, whatever happens), so a
    # mailbox of any size costs no memory: the zip takes one member at a time.
    with tempfile.TemporaryFile(dir=exports_dir(settings)) as manifest:
        archive = await asyncio.to_thread(_open_zip, partial)
        try:
            await _write_owner(archive, owner, account_rows)
            for account in account_rows:
                folders = dict(
                    await Folder.filter(account_id=account.id).values_list("provider_id", "name")
                )
                after = 0
                while (
                    batch := await Message.filter(account_id=account.id, id__gt=after)
                    .order_by("id")
                    .limit(ENVELOPE_BATCH)
                ):
                    entries = await _write_messages(archive, batch, folders)
                    await asyncio.to_thread(_append_lines, manifest, entries)
                    after = batch[-1].id
                    done += len(batch)
                    await _progress(job, worker_id, messages_done=done)
            await asyncio.to_thread(_write_manifest, archive, manifest)
        finally:
            await asyncio.to_thread(archive.close)
    os.replace(partial, archive_path(settings, job.archive_id))
    now = clock.now()
    finished = await ExportJob.filter(id=job.id, lease_owner=worker_id).update(
        status=ExportStatus.READY,
        messages_done=done,
        size_bytes=archive_path(settings, job.archive_id).stat().st_size,
        finished_at=now,
        expires_at=now + EXPORT_LIFETIME,
        lease_owner=None,
        lease_expires_at=None,
    )
    if not finished:  # deleted (termination) or taken over: the file must not outlive the job
        raise ExportAbandoned(job.id)


async def _progress(job: ExportJob, worker_id: str, **columns: int) -> None:
    renewed = await ExportJob.filter(id=job.id, lease_owner=worker_id).update(
        lease_expires_at=clock.now() + LEASE, **columns
    )
    if not renewed:
        raise ExportAbandoned(job.id)


def _open_zip(path: Path) -> zipfile.ZipFile:
    # Created readable by this user only before anything is written into it.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    return zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)


def _json(document: Any, *, indent: int | None = None) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=indent, default=str).encode()


def _write_files(archive: zipfile.ZipFile, files: Sequence[tuple[str, bytes]]) -> None:
    for name, data in files:
        archive.writestr(name, data)


def _append_lines(spool: IO[bytes], entries: Sequence[dict[str, Any]]) -> None:
    for entry in entries:
        spool.write(_json(entry) + b"\n")


def _write_manifest(archive: zipfile.ZipFile, spool: IO[bytes]) -> None:
    spool.seek(0)
    with archive.open("manifest.json", "w") as out:
        out.write(b'{"format": ' + _json(FORMAT) + b', "messages": [')
        for n, line in enumerate(spool):
            out.write((b"\n" if n == 0 else b",\n") + line.rstrip(b"\n"))
        out.write(b"\n]}\n")


async def _write_owner(archive: zipfile.ZipFile, owner: Owner, accounts: Sequence[Account]) -> None:
    """owner.json, its usage log read and written a page at a time."""
    head = _json(await _owner_document(owner, accounts), indent=2)
    out = await asyncio.to_thread(archive.open, "owner.json", "w")
    try:
        # The document without its closing brace, then the usage log as its last member.
        await asyncio.to_thread(out.write, head.rstrip()[:-1].rstrip() + b',\n  "usage_log": [')
        after, first = 0, True
        while (
            page := await UsageLogEntry.filter(owner_id=owner.id, id__gt=after)
            .order_by("id")
            .limit(USAGE_PAGE)
        ):
            lines = []
            for entry in page:
                lines.append((b"\n    " if first else b",\n    ") + _json(_usage_entry(entry)))
                first = False
            await asyncio.to_thread(out.write, b"".join(lines))
            after = page[-1].id
        await asyncio.to_thread(out.write, b"\n  ]\n}\n")
    finally:
        await asyncio.to_thread(out.close)


def _usage_entry(entry: UsageLogEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "token_id": entry.token_id,
        "operation_name": entry.operation_name,
        "operation_type": entry.operation_type,
        "status": entry.status,
        "error_codes": list(entry.error_codes),
        "duration_ms": entry.duration_ms,
    }


async def _owner_document(owner: Owner, accounts: Sequence[Account]) -> dict[str, Any]:
    with_credentials = set(
        await Credential.filter(account_id__in=[a.id for a in accounts])
        .distinct()
        .values_list("account_id", flat=True)
    )
    tokens = await ApiToken.filter(owner_id=owner.id).order_by("id")
    return {
        "format": FORMAT,
        "exported_at": clock.now().isoformat(),
        "profile": {
            "id": owner.id,
            "name": owner.name,
            "email": owner.email,
            "created_at": owner.created_at.isoformat(),
        },
        "accounts": [
            {
                "id": account.id,
                "provider": account.provider.value,
                "address": account.address,
                "display_name": account.display_name,
                "status": account.status.value,
                "created_at": account.created_at.isoformat(),
                "cache_policy": {
                    "retention_days": account.retention_days,
                    "cache_bodies": account.cache_bodies,
                    "fetch_uncached_bodies": account.fetch_uncached_bodies,
                },
                "provider_settings": account.provider_settings,
                "credentials_set": account.id in with_credentials,
                "folders": [
                    {"provider_id": provider_id, "name": name, "role": str(role)}
                    for provider_id, name, role in await Folder.filter(account_id=account.id)
                    .order_by("id")
                    .values_list("provider_id", "name", "role")
                ],
            }
            for account in accounts
        ],
        # Metadata only: the digest stays out, and the raw token was never stored.
        "tokens": [
            {
                "id": token.id,
                "name": token.name,
                "display_prefix": token.display_prefix,
                "scopes": list(token.actions),
                "account_ids": token.account_ids,
                "created_at": token.created_at.isoformat(),
                "expires_at": _iso(token.expires_at),
                "revoked_at": _iso(token.revoked_at),
                "last_used_at": _iso(token.last_used_at),
            }
            for token in tokens
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _write_messages(
    archive: zipfile.ZipFile, batch: Sequence[Message], folders: dict[str, str]
) -> list[dict[str, Any]]:
    ids = [message.id for message in batch]
    attachments: dict[int, list[dict[str, Any]]] = {}
    for row in (
        await Attachment.filter(message_id__in=ids)
        .order_by("id")
        .values("message_id", "filename", "content_type", "size", "content_id", "inline")
    ):
        attachments.setdefault(row.pop("message_id"), []).append(row)
    entries = []
    for start in range(0, len(batch), BODY_BATCH):
        part = batch[start : start + BODY_BATCH]
        bodies = {
            body.message_id: body  # type: ignore[attr-defined]  # the column behind ``message``
            for body in await MessageBody.filter(message_id__in=[m.id for m in part])
        }
        files = []
        for message in part:
            body = bodies.get(message.id)
            path = f"messages/{message.account_id}/{message.id}.eml"  # type: ignore[attr-defined]
            data, source = eml_bytes(message, body)
            files.append((path, data))
            entries.append(
                {
                    "path": path,
                    "account_id": message.account_id,  # type: ignore[attr-defined]
                    "provider_id": message.provider_id,
                    "source": source,
                    "body_cached": body is not None,
                    "date": message.date.isoformat(),
                    "subject": message.subject,
                    "unread": message.unread,
                    "starred": message.starred,
                    "draft": message.draft,
                    "folders": [folders.get(label, label) for label in message.label_ids],
                    "attachments": attachments.get(message.id, []),
                }
            )
        await asyncio.to_thread(_write_files, archive, files)
    return entries


def eml_bytes(message: Message, body: MessageBody | None) -> tuple[bytes, str]:
    """The message as RFC 5322 bytes, and whether they are the cached original (``raw_mime``)
    or ``reconstructed`` from the cached envelope and bodies."""
    if body is not None and body.raw_mime:
        return bytes(body.raw_mime), "raw_mime"
    return _reconstructed(message, body).as_bytes(policy=email.policy.SMTP), "reconstructed"


def _reconstructed(message: Message, body: MessageBody | None) -> EmailMessage:
    mail = EmailMessage(policy=email.policy.SMTP)
    for header, addresses in (
        ("From", message.from_addresses),
        ("To", message.to_addresses),
        ("Cc", message.cc_addresses),
        ("Reply-To", message.reply_to_addresses),
    ):
        parsed = [a for a in (_address(item) for item in addresses) if a is not None]
        if parsed:
            mail[header] = parsed
    mail["Subject"] = _one_line(message.subject)
    mail["Date"] = format_datetime(message.date)
    for header, value in (
        ("Message-ID", message.message_id_header),
        ("In-Reply-To", message.in_reply_to),
    ):
        if value:
            mail[header] = _one_line(value)
    if message.references:
        mail["References"] = _one_line(" ".join(str(r) for r in message.references))
    text = None if body is None else body.text_body
    html = None if body is None else body.html_body
    if text is None and html is None:
        mail.set_content("")
        return mail
    if text is not None:
        mail.set_content(text)
    if html is not None:
        if text is None:
            mail.set_content(html, subtype="html")
        else:
            mail.add_alternative(html, subtype="html")
    return mail


def _address(item: Any) -> HeaderAddress | Group | None:
    if not isinstance(item, dict):
        return None
    name = _one_line(str(item.get("name") or ""))
    mailbox = _one_line(str(item.get("email") or ""))
    try:
        return HeaderAddress(display_name=name, addr_spec=mailbox)
    except (ValueError, IndexError, HeaderParseError):
        # Not an address the email package can write (broken mail): an empty group keeps the
        # text readable and the header valid.
        label = _one_line(f"{name} {mailbox}")
        return Group(display_name=label) if label else None


def _one_line(value: str) -> str:
    return " ".join(value.split())
