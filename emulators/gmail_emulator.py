"""The emulated Google, in one object and one ASGI app: identity server, Gmail API, controls.

``GoogleEmulator`` holds the shared state (accounts and tokens, mailboxes, quota, faults, stats)
and serves it all from one Starlette app, so one port stands for accounts.google.com,
oauth2.googleapis.com and gmail.googleapis.com alike::

    emulator = GoogleEmulator(seed=1, clock=ManualClock())
    emulator.register_client("client-1", "secret-1", ["http://127.0.0.1/callback"])
    mailbox = emulator.add_user("alice@example.com")
    with serve_in_thread(emulator.app) as server:
        urls = emulator.urls(server.base_url)   # auth_uri, token_uri, gmail_api, batch_uri, ...

Paths: ``/o/oauth2/auth``, ``/token``, ``/revoke``, ``/oauth2/v3/userinfo`` (identity),
``/gmail/v1/users/{userId}/...`` (Gmail API), ``/batch/gmail/v1`` (batch), ``/_emulator/...``
(controls over HTTP for other processes, see ``emulators.gmail_control``). Watch notifications
go out as Pub/Sub push requests to the endpoint subscribed with ``push.subscribe(topic, url)``.

Run it alone for a demo or a multi-process test: ``python -m emulators.gmail_emulator --help``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from emulators.corpus import make_mailbox
from emulators.gmail_api import gmail_routes
from emulators.gmail_batch import BATCH_PATH, batch_route
from emulators.gmail_clock import Clock
from emulators.gmail_control import control_routes
from emulators.gmail_faults import FaultInjector
from emulators.gmail_gateway import SCOPE_FULL, Gateway
from emulators.gmail_push import PushChannel
from emulators.gmail_quota import DEFAULT_UNITS_PER_MINUTE, QuotaMeter
from emulators.gmail_records import StoredMessage
from emulators.gmail_render import AttachmentIds
from emulators.gmail_stats import GmailStats
from emulators.gmail_store import GmailStore, Mailbox
from emulators.google_identity import (
    AUTH_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    GoogleIdentity,
    OAuthClient,
)


class _CurrentApp:
    """Serves whatever app is current, so ``GoogleEmulator.reset`` needs no server restart."""

    current: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.current(scope, receive, send)


@dataclass(frozen=True)
class GoogleUrls:
    """Where a client finds each service of an emulator served at ``base_url``."""

    auth_uri: str
    token_uri: str
    revoke_uri: str
    userinfo_uri: str
    gmail_api: str  # + "/users/me/messages" and so on
    batch_uri: str


class GoogleEmulator:
    """Identity server, Gmail mailboxes and the Gmail API over one shared state."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock = time.time,
        units_per_minute: int = DEFAULT_UNITS_PER_MINUTE,
        access_token_lifetime: int = 3599,
        max_concurrent_requests: int | None = None,
        push_min_interval: float = 1.0,
    ) -> None:
        self._seed = seed
        self._push_min_interval = push_min_interval
        self._clock = clock
        self._units_per_minute = units_per_minute
        self._access_token_lifetime = access_token_lifetime
        self._max_concurrent_requests = max_concurrent_requests
        self.push = PushChannel(min_interval=push_min_interval, seed=seed)
        self.app = _CurrentApp()
        """The ASGI app: identity, Gmail API, batch and ``/_emulator`` routes."""
        self.reset()

    def reset(self) -> None:
        """Start over with no clients, users, mail, faults, push subscriptions or stats.

        A test suite can serve ``app`` once and reset between tests: ``app`` always serves the
        current state. Re-read ``identity``, ``quota``, ``faults``, ``stats``, ``gateway`` and
        ``push`` after a reset; references taken before it point at the old state. Settings and
        clock stay as constructed.
        """
        clock = self._clock
        self.push.close()  # its thread must not deliver the old state's notifications
        self.push = PushChannel(min_interval=self._push_min_interval, seed=self._seed)
        self.identity = GoogleIdentity(
            clock=clock, access_token_lifetime=self._access_token_lifetime
        )
        self.quota = QuotaMeter(clock, self._units_per_minute)
        self.faults = FaultInjector()
        self.stats = GmailStats()
        self._store = GmailStore(seed=self._seed, clock=clock, notify=self.push.notify)
        self.gateway = Gateway(self.identity, self._store, self.quota, self.faults, self.stats)
        self.gateway.max_concurrent_requests = self._max_concurrent_requests
        gmail = gmail_routes(self.gateway, AttachmentIds())
        # Batch calls are dispatched in process to an app holding only the Gmail routes.
        batch = batch_route(Starlette(routes=gmail), random.Random(self._seed), self.stats)
        routes = [*self.identity.routes(), *control_routes(self), batch, *gmail]
        self.app.current = Starlette(routes=routes)

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: Iterable[str]
    ) -> OAuthClient:
        return self.identity.register_client(client_id, client_secret, redirect_uris)

    def add_user(self, email: str, *, approve: bool = True, default: bool = False) -> Mailbox:
        """A Google account (see ``GoogleIdentity.add_user``) and its empty mailbox."""
        self.identity.add_user(email, approve=approve, default=default)
        return self._store.mailbox(email)

    def mailbox(self, email: str) -> Mailbox:
        return self._store.mailbox(email)

    def load_corpus(self, email: str, *, seed: int, count: int) -> list[StoredMessage]:
        """Deliver ``make_mailbox(seed, count)`` to ``email``'s inbox."""
        mailbox = self._store.mailbox(email)
        return [mailbox.deliver(raw) for raw in make_mailbox(seed, count)]

    def snapshot(self) -> dict[str, Any]:
        """Stats (see ``GmailStats.snapshot``) plus quota in use and faults served."""
        return {
            **self.stats.snapshot(),
            "quota": {"unitsPerMinute": self.quota.units_per_minute, "used": self.quota.usage()},
            "faults_served": self.faults.served,
            "push": dict(self.push.counts),
        }

    @staticmethod
    def urls(base_url: str) -> GoogleUrls:
        base = base_url.rstrip("/")
        return GoogleUrls(
            auth_uri=base + AUTH_PATH,
            token_uri=base + TOKEN_PATH,
            revoke_uri=base + REVOKE_PATH,
            userinfo_uri=base + USERINFO_PATH,
            gmail_api=base + "/gmail/v1",
            batch_uri=base + BATCH_PATH,
        )

    def client_config(self, base_url: str, client_id: str) -> dict[str, Any]:
        """The ``{"web": {...}}`` document ``Flow.from_client_config`` takes."""
        client = self.identity.client(client_id)
        urls = self.urls(base_url)
        return {
            "web": {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "redirect_uris": list(client.redirect_uris),
                "auth_uri": urls.auth_uri,
                "token_uri": urls.token_uri,
            }
        }


def main(argv: Sequence[str] | None = None) -> None:
    """Serve an emulator in the foreground, with users, clients and mail from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--user", action="append", default=[], help="email; repeatable")
    parser.add_argument("--messages", type=int, default=0, help="corpus messages per user")
    parser.add_argument(
        "--client", action="append", default=[], help="ID:SECRET:REDIRECT[,REDIRECT...]"
    )
    parser.add_argument("--units-per-minute", type=int, default=DEFAULT_UNITS_PER_MINUTE)
    parser.add_argument("--token-lifetime", type=int, default=3599)
    args = parser.parse_args(argv)
    emulator = GoogleEmulator(
        seed=args.seed,
        units_per_minute=args.units_per_minute,
        access_token_lifetime=args.token_lifetime,
    )
    for spec in args.client:
        client_id, secret, redirects = spec.split(":", 2)
        emulator.register_client(client_id, secret, redirects.split(","))
    for number, email in enumerate(args.user):
        emulator.add_user(email)
        if args.messages:
            emulator.load_corpus(email, seed=args.seed + number, count=args.messages)
    urls = emulator.urls(f"http://{args.host}:{args.port}")
    print(json.dumps({**asdict(urls), "full_scope": SCOPE_FULL}), flush=True)
    uvicorn.run(emulator.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
