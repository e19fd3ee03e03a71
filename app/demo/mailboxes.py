"""The demo's Google and Microsoft: both emulators on loopback over https, with seeded mailboxes.

``DemoMailboxes.start`` creates a throwaway CA in the demo's folder, serves the Gmail emulator
and the Microsoft emulator (identity platform + Graph) with a certificate from it on free
loopback ports, registers the demo OAuth clients with the server's callback URLs, creates one
user in each and fills both mailboxes from ``emulators.corpus``. ``settings`` is what the server
needs to reach them (endpoints, client ids, the CA to trust); ``deliver_new_mail`` drops one
fresh message into the Gmail inbox, as Google's MX would.

The CA file is trusted by this server's HTTP clients only (and by the demo's "browser"); it is
never added to a system trust store. Nothing here talks to the real Google or Microsoft.
"""

from __future__ import annotations

import random
import secrets
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from emulators.corpus import PEOPLE, make_mailbox, make_message
from emulators.gmail_emulator import GoogleEmulator
from emulators.graph_emulator import MicrosoftEmulator, serve_microsoft_emulator
from emulators.runner import serve_in_thread
from emulators.test_ca import TlsFiles, create_test_ca

GOOGLE_CLIENT_ID = "inbox-api-demo.apps.googleusercontent.example"
MICROSOFT_CLIENT_ID = "00000000-0000-4000-8000-00000000de00"
GMAIL_USER = ("Ada Lovelace", "ada.lovelace@gmail.example")
MICROSOFT_USER = ("Grace Hopper", "grace.hopper@contoso.example")


@dataclass(frozen=True)
class DemoUser:
    """A mailbox of the demo: who it belongs to, and which provider holds it."""

    name: str
    address: str
    provider: str


class DemoMailboxes:
    """Both emulators, served until the ``ExitStack`` given to ``start`` closes."""

    def __init__(
        self,
        tls: TlsFiles,
        google: GoogleEmulator,
        google_url: str,
        microsoft: MicrosoftEmulator,
        microsoft_url: str,
        microsoft_authority: str,
        google_secret: str,
        microsoft_secret: str,
    ) -> None:
        self.tls = tls
        self.google = google
        self.google_url = google_url
        self.microsoft = microsoft
        self.microsoft_url = microsoft_url
        self.microsoft_authority = microsoft_authority
        self._google_secret = google_secret
        self._microsoft_secret = microsoft_secret
        self._rng = random.Random()  # noqa: S311 (demo mail needs no cryptographic randomness)
        self.gmail_user = DemoUser(*GMAIL_USER, "Gmail")
        self.microsoft_user = DemoUser(*MICROSOFT_USER, "Microsoft 365")

    @classmethod
    def start(
        cls, stack: ExitStack, directory: Path, public_url: str, *, messages: int
    ) -> DemoMailboxes:
        """Serve both emulators (stopped when ``stack`` closes) with ``messages`` mails each."""
        tls = create_test_ca(directory / "demo-ca")
        google = GoogleEmulator(seed=1)
        stack.callback(google.push.close)
        google_server = stack.enter_context(
            serve_in_thread(
                google.app, ssl_certfile=str(tls.cert_path), ssl_keyfile=str(tls.key_path)
            )
        )
        microsoft = MicrosoftEmulator(notification_verify=tls.client_context())
        microsoft_server = stack.enter_context(serve_microsoft_emulator(microsoft, tls))
        mailboxes = cls(
            tls,
            google,
            google_server.base_url,
            microsoft,
            microsoft_server.base_url,
            microsoft_server.authority(),
            google_secret=secrets.token_urlsafe(24),
            microsoft_secret=secrets.token_urlsafe(24),
        )
        mailboxes._register_clients(public_url)
        mailboxes._seed(messages)
        return mailboxes

    def settings(self) -> dict[str, Any]:
        """The server settings that point it at these emulators (and at nothing else)."""
        google = self.google.urls(self.google_url)
        return {
            "google_client_id": GOOGLE_CLIENT_ID,
            "google_client_secret": self._google_secret,
            "google_auth_uri": google.auth_uri,
            "google_token_uri": google.token_uri,
            "google_revoke_uri": google.revoke_uri,
            "gmail_api_base": self.google_url,
            "google_ca_file": self.tls.ca_path,
            "microsoft_client_id": MICROSOFT_CLIENT_ID,
            "microsoft_client_secret": self._microsoft_secret,
            "microsoft_authority": self.microsoft_authority,
            "microsoft_ca_file": self.tls.ca_path,
            "graph_api_base": self.microsoft_url,
        }

    def deliver_new_mail(self) -> str:
        """One new message from a random correspondent into the Gmail inbox; its subject."""
        sender = self._rng.choice(PEOPLE)
        raw = make_message(
            self._rng,
            sender=sender,
            recipients=[(self.gmail_user.name, self.gmail_user.address)],
            date=datetime.now(UTC),
        )
        stored = self.google.mailbox(self.gmail_user.address).deliver(raw)
        return _subject(raw) or stored.id

    def _register_clients(self, public_url: str) -> None:
        base = public_url.rstrip("/")
        self.google.register_client(
            GOOGLE_CLIENT_ID, self._google_secret, [f"{base}/oauth/callback/google"]
        )
        self.microsoft.register_app(
            MICROSOFT_CLIENT_ID, self._microsoft_secret, [f"{base}/oauth/callback/microsoft"]
        )

    def _seed(self, messages: int) -> None:
        self.google.add_user(self.gmail_user.address, default=True)
        self.google.load_corpus(self.gmail_user.address, seed=11, count=messages)
        self.microsoft.add_user(self.microsoft_user.address, self.microsoft_user.name)
        for raw in make_mailbox(12, messages):
            self.microsoft.deliver(
                self.microsoft_user.address, raw, received_at=_date(raw), is_read=True
            )


_HEADERS = BytesHeaderParser()


def _date(raw: bytes) -> datetime | None:
    value = _HEADERS.parsebytes(raw).get("Date")
    return None if value is None else parsedate_to_datetime(str(value))


def _subject(raw: bytes) -> str:
    value = _HEADERS.parsebytes(raw).get("Subject", "")
    return " ".join(str(make_header(decode_header(str(value)))).split())  # unfolded
