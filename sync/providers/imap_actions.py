"""IMAP writes: flags, moves, archive, trash and deletion by UID, and sending through SMTP.

``ImapActionAdapter`` is the IMAP adapter (``imap.ImapAdapter``) with the ``MessageActions`` of
``sync.providers.actions``; the production factory (``sync.sessions``) builds it, so the
sync engine and the writer share one class. A message id is ``<uidvalidity>:<uid>:<folder>``
(``imap_fetch``); every action SELECTs the message's folder and checks its UIDVALIDITY first (a
renumbered folder answers ``NOT_FOUND``)::

    read / star      UID STORE uid +FLAGS (\\Seen) or -FLAGS (\\Flagged) ...: not .SILENT, so
                     the server's untagged FETCH carries the flags it now holds, and the cache
                     takes them from that answer (UID FETCH FLAGS when a server sends none)
    move             UID FETCH the message, then UID MOVE (RFC 6851), or without MOVE:
                     UID COPY + STORE \\Deleted + UID EXPUNGE of that UID; the COPYUID answer
                     names the new UID, so the batch is the old id deleted and the message
                     under its new id (the fetched record, renumbered), which ``sync.apply``
                     applies to the same cached row (same Message-ID in one batch): the API
                     id survives the move. Without UIDPLUS the server names no new id: the
                     old id is deleted and sync finds the copy
    archive / trash  a move to the special-use \\Archive / \\Trash mailbox (RFC 6154), or
                     ``NO_ARCHIVE_FOLDER`` / ``NO_TRASH_FOLDER`` when the server has none
    delete           UID STORE +FLAGS.SILENT (\\Deleted), UID EXPUNGE of exactly that UID;
                     without UIDPLUS it is refused (``NO_UIDPLUS``): a plain EXPUNGE would
                     also remove what other clients flagged \\Deleted
    labels           ``UnsupportedAction``. IMAP has folders; keywords are not labels the
                     cache could show (no folder row can name one, servers may refuse new
                     keywords, and Gmail's labels over IMAP are X-GM-LABELS, not keywords)

``send_mime`` sends with the account's ``SmtpSender`` (``smtp``), then APPENDs the message to
the \\Sent mailbox flagged \\Seen and answers the stored copy as a record under the id
APPENDUID names. Gmail (``X-GM-EXT-1``) and Microsoft's SMTP servers file sent mail
themselves, so nothing is appended there. Once SMTP has taken the message, a failed APPEND is
not an error (the mail left; an error would let a retry send it again): the answer is empty.

Drafts (``DraftActions``) live in the \\Drafts mailbox flagged \\Draft: a new version is
APPENDed and the old one expunged (IMAP messages never change, so the draft's id changes), and
sending one sends its stored MIME, files the copy in \\Sent and expunges the draft.

Failures are the typed errors of ``sync.providers.errors``; a refused command is a
``PermanentError`` whose code says which (``MOVE_REFUSED``, ``FOLDER_GONE``, ``STORE_REFUSED``).
Nothing is retried here, nothing touches the database.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from app.types import FolderRole
from sync.providers.actions import ActionKind, MessageAction, UnsupportedAction
from sync.providers.errors import PermanentError, ProviderError
from sync.providers.imap import ImapAdapter, ImapEndpoint, MessageNotFound, PasswordSource
from sync.providers.imap_connection import CommandRefused, ImapConnection
from sync.providers.imap_fetch import (
    FULL_ITEMS,
    Fetched,
    flags_record,
    message_record,
    parse_provider_id,
    provider_id,
    read_fetch,
)
from sync.providers.imap_folders import list_mailboxes
from sync.providers.imap_protocol import Item, Response, as_int, as_text, expand, quote
from sync.providers.imap_sync import FolderGone, select
from sync.providers.records import ChangeBatch, FlagsRecord
from sync.providers.smtp import SmtpSender
from vault import Secret

logger = logging.getLogger(__name__)

# SMTP servers that file what they send in the Sent folder themselves.
SELF_FILING_SMTP_HOSTS = ("smtp.gmail.com", "smtp.office365.com", "smtp-mail.outlook.com")
_MISSING_FOLDER_CODES = {
    FolderRole.ARCHIVE: "NO_ARCHIVE_FOLDER",
    FolderRole.TRASH: "NO_TRASH_FOLDER",
}
_ROLES = {ActionKind.ARCHIVE: FolderRole.ARCHIVE, ActionKind.TRASH: FolderRole.TRASH}


class ImapActionAdapter(ImapAdapter):
    """The IMAP adapter that also acts on mail and sends it (through ``smtp`` when given)."""

    def __init__(
        self,
        endpoint: ImapEndpoint,
        password: Secret | PasswordSource,
        *,
        smtp: SmtpSender | None = None,
        **options: Any,
    ) -> None:
        super().__init__(endpoint, password, **options)
        self._smtp = smtp

    async def act(self, provider_id: str, action: MessageAction) -> ChangeBatch:
        if action.kind is ActionKind.CHANGE_LABELS:
            raise UnsupportedAction("IMAP mailboxes have folders, not labels: move instead")
        folder, validity, uid = parse_provider_id(provider_id)
        async with self._pool.connection() as connection:
            caps = connection.capabilities - self._disabled
            target = action.folder
            if action.kind in _ROLES:
                target = await _special_folder(connection, _ROLES[action.kind])
                if target is None:
                    role = _ROLES[action.kind]
                    raise PermanentError(
                        f"the server has no {role.value} folder", code=_MISSING_FOLDER_CODES[role]
                    )
            await _select_message_folder(connection, folder, validity)
            match action.kind:
                case ActionKind.MARK_READ | ActionKind.STAR:
                    flag = "\\Seen" if action.kind is ActionKind.MARK_READ else "\\Flagged"
                    flags = await _store(connection, folder, validity, uid, flag, action.flag)
                    return ChangeBatch(flag_updates=[flags])
                case ActionKind.DELETE:
                    await _expunge(connection, uid, caps)
                    return ChangeBatch(deletions=[provider_id])
                case _:
                    if target is None:
                        raise PermanentError("a move needs a target folder", code="NO_TARGET")
                    if target == folder:  # already there: nothing to do but report it
                        flags = await _flags(connection, folder, validity, uid)
                        return ChangeBatch(flag_updates=[flags])
                    return await _move(connection, folder, validity, uid, target, caps)

    async def send_mime(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        """Send over SMTP, then file the copy in \\Sent (module docstring). IMAP threads by
        headers, which the MIME carries, so ``thread_provider_id`` is not needed."""
        if self._smtp is None:
            raise UnsupportedAction(
                "this IMAP account has no SMTP server: connect it again with its SMTP settings"
            )
        await self._smtp.send(raw)
        if self._smtp.endpoint.host.lower() in SELF_FILING_SMTP_HOSTS:
            return ChangeBatch()
        try:
            return await self._file_sent_copy(raw)
        except ProviderError as error:
            logger.warning("sent; the copy was not filed in Sent (%s)", error.code)
            return ChangeBatch()

    async def _file_sent_copy(self, raw: bytes) -> ChangeBatch:
        async with self._pool.connection() as connection:
            if "X-GM-EXT-1" in connection.capabilities:
                return ChangeBatch()
            sent = await _special_folder(connection, FolderRole.SENT)
            if sent is None:
                return ChangeBatch()
            return await _append(connection, sent, ("\\Seen",), raw)

    # -- drafts (sync.providers.mailbox_drafts.DraftActions) -----------------------------------

    async def create_draft(self, raw: bytes, thread_provider_id: str | None) -> ChangeBatch:
        """APPEND to \\Drafts flagged \\Draft \\Seen; the stored draft as APPENDUID names it."""
        async with self._pool.connection() as connection:
            drafts = await _special_folder(connection, FolderRole.DRAFTS)
            if drafts is None:
                raise PermanentError("the server has no drafts folder", code="NO_DRAFTS_FOLDER")
            saved = await _append(connection, drafts, ("\\Draft", "\\Seen"), raw)
        if not saved.upserts:
            raise PermanentError("the server did not name the saved draft", code="NO_UIDPLUS")
        return saved

    async def update_draft(
        self, provider_id: str, raw: bytes, thread_provider_id: str | None
    ) -> ChangeBatch:
        """IMAP messages cannot change: the new version is appended, then the old expunged.
        Once the new one is stored the answer names it even if the old one cannot be removed
        (an error would have the client save it again; sync shows what is left)."""
        saved = await self.create_draft(raw, thread_provider_id)
        try:
            gone = await self.delete_draft(provider_id)
        except ProviderError as error:
            logger.warning("draft saved; its old version was not removed (%s)", error.code)
            return saved
        return replace(saved, deletions=gone.deletions)

    async def delete_draft(self, provider_id: str) -> ChangeBatch:
        return await self.act(provider_id, MessageAction(ActionKind.DELETE))

    async def send_draft(self, provider_id: str) -> ChangeBatch:
        """Send the draft's stored MIME, file it in \\Sent, and expunge the draft."""
        raw = await self._fetch_raw(provider_id)
        sent = await self.send_mime(raw, None)
        try:
            gone = await self.delete_draft(provider_id)
        except ProviderError as error:  # sent: an error now would let a retry send it again
            logger.warning("sent; the draft was not removed (%s)", error.code)
            return sent
        return replace(sent, deletions=gone.deletions)


async def _append(
    connection: ImapConnection, folder: str, flags: tuple[str, ...], raw: bytes
) -> ChangeBatch:
    """APPEND ``raw`` to ``folder``; the stored message as APPENDUID names it (UIDPLUS), or an
    empty batch when the server names none (sync finds it)."""
    command = f"APPEND {quote(folder)} ({' '.join(flags)})"
    try:
        _, done = await connection.run_tagged(command, literal=raw)
    except CommandRefused:
        raise PermanentError(
            "the server refused to store the message", code="APPEND_REFUSED"
        ) from None
    if done.code_name != "APPENDUID" or len(done.code) < 3:
        return ChangeBatch()
    validity, uid = as_int(done.code[1]), as_int(done.code[2])
    stored = Fetched(uid, frozenset(flags), datetime.now(UTC), len(raw), raw)
    return ChangeBatch(upserts=[message_record(folder, validity, stored, with_content=True)])


async def _special_folder(connection: ImapConnection, role: FolderRole) -> str | None:
    """The mailbox marked with ``role`` (RFC 6154 special use), if the server has one."""
    for mailbox in await list_mailboxes(connection, with_status=False):
        if mailbox.role is role and mailbox.syncable:
            return mailbox.name
    return None


async def _select_message_folder(connection: ImapConnection, folder: str, validity: int) -> None:
    try:
        selected = await select(connection, folder)
    except FolderGone:
        raise MessageNotFound("the message's folder is gone") from None
    if selected.validity != validity:
        raise MessageNotFound("the folder was renumbered (UIDVALIDITY)")


async def _store(
    connection: ImapConnection, folder: str, validity: int, uid: int, flag: str, on: bool
) -> FlagsRecord:
    change = "+FLAGS" if on else "-FLAGS"
    try:
        answers = await connection.run(f"UID STORE {uid} {change} ({flag})")
    except CommandRefused:
        raise PermanentError(
            "the server refused to change the flags", code="STORE_REFUSED"
        ) from None
    found = _fetched_flags(answers, uid)
    if found is None:
        return await _flags(connection, folder, validity, uid)
    return flags_record(folder, validity, uid, found)


async def _flags(connection: ImapConnection, folder: str, validity: int, uid: int) -> FlagsRecord:
    found = _fetched_flags(await connection.run(f"UID FETCH {uid} (UID FLAGS)"), uid)
    if found is None:
        raise MessageNotFound("the message is gone")
    return flags_record(folder, validity, uid, found)


def _fetched_flags(responses: list[Response], uid: int) -> frozenset[str] | None:
    for response in responses:
        if response.kind == "FETCH":
            fetched = read_fetch(response)
            if fetched.uid == uid and _has_flags(response):
                return fetched.flags
    return None


def _has_flags(response: Response) -> bool:
    items = response.items[0] if response.items else []
    return isinstance(items, list) and any(
        isinstance(item, str) and item.upper() == "FLAGS" for item in items[::2]
    )


async def _expunge(connection: ImapConnection, uid: int, caps: frozenset[str]) -> None:
    """Flag ``uid`` \\Deleted and expunge it alone (UIDPLUS's UID EXPUNGE)."""
    if "UIDPLUS" not in caps:
        raise PermanentError(
            "the server cannot expunge one message alone (no UIDPLUS)", code="NO_UIDPLUS"
        )
    try:
        await connection.run(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
        await connection.run(f"UID EXPUNGE {uid}")
    except CommandRefused:
        raise PermanentError("the server refused to delete", code="DELETE_REFUSED") from None


async def _move(
    connection: ImapConnection,
    folder: str,
    validity: int,
    uid: int,
    target: str,
    caps: frozenset[str],
) -> ChangeBatch:
    old_id = provider_id(folder, validity, uid)
    fetched = None
    for response in await connection.run(f"UID FETCH {uid} {FULL_ITEMS}"):
        if response.kind == "FETCH" and (found := read_fetch(response)).uid == uid:
            fetched = found
    if fetched is None or fetched.raw is None:
        raise MessageNotFound("the message is gone")
    if "MOVE" not in caps and "UIDPLUS" not in caps:
        raise PermanentError("the server cannot move one message alone", code="NO_UIDPLUS")
    try:
        if "MOVE" in caps:
            untagged, done = await connection.run_tagged(f"UID MOVE {uid} {quote(target)}")
        else:
            untagged, done = await connection.run_tagged(f"UID COPY {uid} {quote(target)}")
            await _expunge(connection, uid, caps)
    except CommandRefused as refused:
        code = "FOLDER_GONE" if refused.response.code_name == "TRYCREATE" else "MOVE_REFUSED"
        raise PermanentError("the server refused to move the message", code=code) from None
    copied = _copied_to(uid, [*untagged, done])
    if copied is None:
        return ChangeBatch(deletions=[old_id])
    new_validity, new_uid = copied
    moved = message_record(target, new_validity, replace(fetched, uid=new_uid), with_content=True)
    return ChangeBatch(upserts=[moved], deletions=[old_id])


def _copied_to(uid: int, responses: list[Response]) -> tuple[int, int] | None:
    """(UIDVALIDITY, new UID) of ``uid`` from a COPYUID response code (RFC 4315), if any."""
    for response in responses:
        if response.code_name == "COPYUID" and len(response.code) >= 4:
            code: list[Item] = response.code
            sources = expand(as_text(code[2]))
            targets = expand(as_text(code[3]))
            if uid in sources and len(sources) == len(targets):
                return as_int(code[1]), targets[sources.index(uid)]
    return None
