"""IDLE watchers of the IMAP accounts a worker serves: new mail is synced at once.

    worker syncs account A (its adapter comes from ``open_adapter``)  -> A is served here
    every RECONCILE_SECONDS (or at once when an account is first served):
        wanted  = served accounts that are IMAP, ACTIVE, owner not terminated
        held    = claims.claim(wanted)      (one worker per account: ``sync.idle_claims``)
        start a watch for each held account without one; stop every other watch
    a watch: ImapAdapter.watch on INBOX  -> on a change: request_sync_now(A), wake the job loop

One adapter per watched account serves both its IDLE connection and the sync runs of this
worker (``open_adapter`` hands the engine the same adapter), so an account never has more
connections than its adapter's cap (two: one IDLE, one for commands). The engine closes the
adapter after each run, which logs out its idle command connection only; the IDLE connection is
the watch's own.

A refused login ends a watch: it asks for a sync, which logs in once with the password stored
then, on an adapter of its own, and marks the account as needing re-authorisation if refused
too (at most two refused logins, never a retry storm; such an account is no longer watched).
A server without IDLE ends it for good (the account is polled). After a refusal or another
permanent error a watch starts again, on a new adapter, after ``PERMANENT_RETRY_SECONDS`` if the
account is still wanted; transient errors are retried by ``watch`` itself with backoff. An
account that is disconnected, paused, needs re-authorisation or whose server settings change
loses its watch at the next reconcile (a new one starts with the new settings).

Never syncs itself, never logs a credential or a message: only account ids and error codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from app.models import Account
from app.services.sync_control import request_sync_now
from app.types import AccountId, AccountStatus, Provider
from sync.engine import AdapterFactory
from sync.idle_claims import WatchClaims
from sync.providers.adapter import MailboxAdapter
from sync.providers.errors import AuthRevoked, ProviderError
from sync.providers.imap import ImapAdapter

logger = logging.getLogger("inbox_api.worker")

RECONCILE_SECONDS = 5.0
PERMANENT_RETRY_SECONDS = 600.0
START_RETRY_SECONDS = 60.0


@dataclass
class _Watch:
    adapter: ImapAdapter
    server_settings: bytes  # the account's provider settings when the watch began
    task: asyncio.Task[None] | None = None
    retry_at: float = 0.0  # when an ended watch may start again (inf: never)
    refused: bool = False  # the login was refused: syncs get adapters of their own

    def ended(self) -> bool:
        return self.task is None or self.task.done()


class IdleWatchers:
    """The IDLE watches of one worker process."""

    def __init__(
        self,
        adapter_factory: AdapterFactory,
        claims: WatchClaims,
        *,
        wake_event: asyncio.Event,
        reconcile_seconds: float = RECONCILE_SECONDS,
        on_idle: Callable[[int], None] | None = None,
    ) -> None:
        self._open = adapter_factory
        self._claims = claims
        self._wake = wake_event
        self._reconcile_seconds = reconcile_seconds
        self._on_idle = on_idle
        self._served: set[int] = set()
        self._watches: dict[int, _Watch] = {}
        self._reconcile_now = asyncio.Event()
        self._not_before: dict[int, float] = {}  # accounts whose adapter could not be built

    async def open_adapter(self, account: Account) -> MailboxAdapter:
        """The engine's ``AdapterFactory``: the watch's adapter when this worker watches the
        account with its current settings, else a new one. Marks the account as served."""
        if account.id not in self._served:
            self._served.add(account.id)
            self._reconcile_now.set()
        watch = self._watches.get(account.id)
        if (
            watch is not None
            and not watch.refused
            and watch.server_settings == _settings_key(account)
        ):
            return watch.adapter
        return await self._open(account)

    def watching(self) -> set[int]:
        """The accounts whose watch is running now."""
        return {account_id for account_id, watch in self._watches.items() if not watch.ended()}

    @contextlib.asynccontextmanager
    async def running(self, stop_event: asyncio.Event) -> AsyncIterator[None]:
        """Reconcile the watches until the block ends, then stop them all."""
        task = asyncio.create_task(self._reconcile_forever(stop_event), name="idle-watchers")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._stop(list(self._watches))
            await self._claims.aclose()

    async def _reconcile_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._reconcile_now.clear()
            try:
                await self._reconcile()
            except Exception:
                # The database may be away for a moment; the watches outlive that.
                logger.exception("IDLE watchers: reconciling failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_now.wait(), self._reconcile_seconds)

    async def _reconcile(self) -> None:
        rows = await Account.filter(
            id__in=list(self._served),
            provider=Provider.IMAP,
            status=AccountStatus.ACTIVE,
            owner__terminated_at__isnull=True,
        )
        wanted = {int(account.id): account for account in rows}
        self._served.intersection_update(wanted)  # disconnected accounts are forgotten
        self._not_before = {i: t for i, t in self._not_before.items() if i in wanted}
        held = await self._claims.claim(wanted) if wanted else set()
        stale = [
            account_id
            for account_id, watch in self._watches.items()
            if account_id not in held or watch.server_settings != _settings_key(wanted[account_id])
        ]
        await self._stop(stale)
        await self._claims.release([i for i in self._claims.held if i not in wanted])
        now = asyncio.get_running_loop().time()
        for account_id in held:
            watch = self._watches.get(account_id)
            if watch is not None and watch.ended() and now >= watch.retry_at:
                await self._discard([account_id])  # a new adapter: a refusal is not kept
                watch = None
            if watch is None and now >= self._not_before.get(account_id, 0.0):
                await self._start(wanted[account_id])

    async def _start(self, account: Account) -> None:
        try:
            adapter = await self._open(account)
        except Exception as error:  # the sync run reports it; the watch waits
            logger.warning("IDLE watch of account %s not started: %s", account.id, _code(error))
            loop = asyncio.get_running_loop()
            self._not_before[int(account.id)] = loop.time() + START_RETRY_SECONDS
            return
        if not isinstance(adapter, ImapAdapter):
            await adapter.aclose()
            return
        watch = _Watch(adapter, _settings_key(account))
        watch.task = self._watch_task(int(account.id), watch)
        self._watches[int(account.id)] = watch

    def _watch_task(self, account_id: int, watch: _Watch) -> asyncio.Task[None]:
        return asyncio.create_task(self._watch(account_id, watch), name=f"idle-{account_id}")

    async def _watch(self, account_id: int, watch: _Watch) -> None:
        async def changed() -> None:
            try:
                await request_sync_now(AccountId(account_id))
            except Exception:
                logger.exception("IDLE watch of account %s: requesting a sync failed", account_id)
            self._wake.set()

        def idling() -> None:
            if self._on_idle is not None:
                self._on_idle(account_id)

        retry_after = math.inf
        try:
            await watch.adapter.watch(changed, on_idle=idling)
            logger.info("account %s: the server has no IDLE; it is polled", account_id)
        except AuthRevoked:
            logger.info("IDLE watch of account %s: login refused; watch ended", account_id)
            watch.refused = True
            retry_after = PERMANENT_RETRY_SECONDS  # by then a sync has usually marked it
            await changed()  # the next sync tries once more (a new password?) and records it
        except ProviderError as error:
            logger.warning("IDLE watch of account %s ended: %s", account_id, error.code)
            retry_after = PERMANENT_RETRY_SECONDS
        except Exception:
            logger.exception("IDLE watch of account %s failed", account_id)
            retry_after = PERMANENT_RETRY_SECONDS
        watch.retry_at = asyncio.get_running_loop().time() + retry_after

    async def _stop(self, account_ids: list[int]) -> None:
        await self._discard(account_ids)
        await self._claims.release(account_ids)

    async def _discard(self, account_ids: list[int]) -> None:
        watches = [self._watches.pop(i) for i in account_ids if i in self._watches]
        tasks = [w.task for w in watches if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in watches:
            with contextlib.suppress(Exception):
                await watch.adapter.aclose()


def _settings_key(account: Account) -> bytes:
    return orjson.dumps(account.provider_settings, option=orjson.OPT_SORT_KEYS)


def _code(error: Exception) -> str:
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else type(error).__name__
