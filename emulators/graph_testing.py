"""Helpers for tests that drive the Microsoft emulator over real https.

    clock = ManualClock()
    with serve_for_tests(tls_dir, clock=clock) as served:
        mailbox = served.new_mailbox()
        with served.graph_client(mailbox.token, immutable_ids=True) as graph:
            graph.get("me/mailFolders/inbox/messages/delta")
        clock.advance(30)   # instead of sleeping through a Retry-After

A `ManualClock` moves only when told, so token lifetimes, Retry-After windows, delta token
lifetimes and subscription expiry are tested without sleeping. Nothing here is used by the
emulator itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from emulators.graph_emulator import (
    MicrosoftEmulator,
    RunningMicrosoftEmulator,
    serve_microsoft_emulator,
)
from emulators.microsoft_identity import DEFAULT_APP_SCOPES, DirectoryUser
from emulators.test_ca import TlsFiles, create_test_ca

TEST_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TEST_CLIENT_SECRET = "emulator-test-secret"  # noqa: S105 - a fake secret for a fake tenant
TEST_REDIRECT_URI = "http://localhost:8400/oauth/microsoft/callback"
_user_numbers = itertools.count(1)


class ManualClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class EmulatedMailbox:
    user: DirectoryUser
    token: str

    @property
    def address(self) -> str:
        return self.user.username

    @property
    def oid(self) -> str:
        return self.user.oid


@dataclass(frozen=True)
class ServedEmulator:
    running: RunningMicrosoftEmulator

    @property
    def emulator(self) -> MicrosoftEmulator:
        return self.running.emulator

    @property
    def tls(self) -> TlsFiles:
        return self.running.tls

    def new_mailbox(self, scopes: Iterable[str] = DEFAULT_APP_SCOPES) -> EmulatedMailbox:
        """A fresh user with a mailbox, and an access token for the test app."""
        number = next(_user_numbers)
        user = self.emulator.add_user(f"user{number}@contoso.test", f"User {number}")
        return EmulatedMailbox(user, self.token_for(user.oid, scopes))

    def token_for(self, user_ref: str, scopes: Iterable[str] = DEFAULT_APP_SCOPES) -> str:
        """A new access token for the test app (e.g. after the clock passed the old one's)."""
        return self.emulator.issue_access_token(user_ref, TEST_CLIENT_ID, scopes)

    def graph_client(
        self, token: str | None, *, immutable_ids: bool = False, **options: Any
    ) -> httpx.Client:
        """An httpx client on `{base}/v1.0/` that trusts only the test CA."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if immutable_ids:
            headers["Prefer"] = 'IdType="ImmutableId"'
        return httpx.Client(
            base_url=f"{self.running.graph_url}/",
            headers=headers,
            verify=self.tls.client_context(),
            trust_env=False,
            **options,
        )

    def control_client(self) -> httpx.Client:
        """An httpx client on the emulator's root (for `/_emulator/...` and identity)."""
        return httpx.Client(
            base_url=self.running.base_url, verify=self.tls.client_context(), trust_env=False
        )


@contextmanager
def serve_for_tests(tls_dir: Path, **emulator_options: Any) -> Iterator[ServedEmulator]:
    """A fresh emulator with the test app registered, served over https with a fresh CA."""
    tls = create_test_ca(tls_dir)
    emulator = MicrosoftEmulator(notification_verify=tls.client_context(), **emulator_options)
    emulator.register_app(TEST_CLIENT_ID, TEST_CLIENT_SECRET, [TEST_REDIRECT_URI])
    with serve_microsoft_emulator(emulator, tls) as running:
        yield ServedEmulator(running)
