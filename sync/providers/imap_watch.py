"""IMAP IDLE (RFC 2177) on one folder of a dedicated connection, until something fails.

    EXAMINE <folder>                      read-only: watching must not change \\Recent
    loop:  IDLE -> "+ idling"
           * n EXISTS / EXPUNGE / FETCH / VANISHED  -> after DEBOUNCE_SECONDS: on_change()
           renew_seconds passed (< 29 min)  -> DONE -> tagged OK -> IDLE again

One read is always outstanding, so a renewal (DONE) never races a half-read response. A change
waits ``DEBOUNCE_SECONDS`` for the responses that usually follow it (EXISTS then RECENT, a
burst of deliveries) so that a burst costs one ``on_change``. Failures raise the connection's
typed errors; ``ImapAdapter.watch`` reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from sync.providers.errors import PermanentError, TransientError
from sync.providers.imap_connection import ImapConnection
from sync.providers.imap_protocol import Response, quote

DEBOUNCE_SECONDS = 0.05
CHANGE_KINDS = frozenset({"EXISTS", "EXPUNGE", "FETCH", "VANISHED"})
DONE_ANSWER_SECONDS = 30.0


async def watch_folder(
    connection: ImapConnection,
    folder: str,
    on_change: Callable[[], Awaitable[None]],
    *,
    renew_seconds: float,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """IDLE on ``folder`` forever (until an error or cancellation)."""
    await connection.run(f"EXAMINE {quote(folder)}")
    while True:
        await _idle_round(connection, on_change, renew_seconds, on_idle)


async def _idle_round(
    connection: ImapConnection,
    on_change: Callable[[], Awaitable[None]],
    renew_seconds: float,
    on_idle: Callable[[], None] | None,
) -> None:
    tag = connection.new_tag()
    await connection.send_line(f"{tag} IDLE")
    first = await connection.read()
    if first.tag != "+":
        raise PermanentError("the server refused IDLE", code="IDLE")
    if on_idle is not None:
        on_idle()
    loop = asyncio.get_running_loop()
    renew_at = loop.time() + renew_seconds
    change_at: float | None = None
    done_sent = False
    reader = _next(connection, renew_seconds)
    try:
        while True:
            wake = min(renew_at, change_at) if change_at is not None else renew_at
            finished, _ = await asyncio.wait({reader}, timeout=max(wake - loop.time(), 0))
            if not finished:
                if change_at is not None and loop.time() >= change_at:
                    change_at = None
                    await on_change()
                elif not done_sent:
                    await connection.send_line("DONE")
                    done_sent = True
                    renew_at = loop.time() + DONE_ANSWER_SECONDS
                else:
                    raise TransientError("IDLE did not end after DONE", code="TIMEOUT")
                continue
            response: Response = reader.result()
            if response.tag == tag:
                if response.kind != "OK":
                    raise PermanentError("IDLE ended with an error", code="IDLE")
                break
            if response.kind == "BYE":
                raise TransientError("the server closed the session", code="BYE")
            if response.kind in CHANGE_KINDS and change_at is None:
                change_at = loop.time() + DEBOUNCE_SECONDS
            reader = _next(connection, renew_seconds)
    finally:
        if not reader.done():
            reader.cancel()
            connection.broken = True
            with contextlib.suppress(asyncio.CancelledError, TransientError, PermanentError):
                await reader
    if change_at is not None:
        await on_change()


def _next(connection: ImapConnection, renew_seconds: float) -> asyncio.Task[Response]:
    return asyncio.ensure_future(connection.read(wait=renew_seconds + DONE_ANSWER_SECONDS))
