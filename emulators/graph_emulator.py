"""The emulated Microsoft cloud: identity platform + Graph mail, one state, one https server.

`MicrosoftEmulator` owns everything and shares it: the identity platform's directory (apps,
users, grants, tokens), the Graph mailboxes (`GraphStore`), the throttle and the subscription
hub, all on one injectable clock. `app()` serves the lot from one Starlette app:

    /{tenant}/v2.0/..., /{tenant}/oauth2/v2.0/...   identity platform  (login.microsoftonline.com)
    /v1.0/...                                       Graph mail         (graph.microsoft.com)
    /_emulator/...                                  test controls      (`graph_control`)

so one https server answers for both hosts: point the authority at `{base_url}/{tenant_id}` and
the Graph base URL at `{base_url}/v1.0`. (Serving `create_identity_app` and a Graph-only app on
two servers also works; they then still share this object.) Tests call the Python controls
below; another process calls the same controls over HTTP. Run it standalone with

    python -m emulators.graph_emulator --tls-dir /tmp/ms-emulator [--port 8443]

which writes the test CA there and prints the base URL and the CA path as one JSON line.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import secrets
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from emulators.graph_api import GraphApi
from emulators.graph_control import control_routes
from emulators.graph_delta import DeltaTokens
from emulators.graph_mime import Attachment, Recipient, build_mime
from emulators.graph_store import GraphStore, MailFolder, MailMessage
from emulators.graph_subscriptions import Delivery, SubscriptionHub
from emulators.graph_throttle import MailboxThrottle
from emulators.graph_types import Clock, JSONObject
from emulators.microsoft_identity import (
    DEFAULT_APP_SCOPES,
    DirectoryUser,
    IdentityPlatform,
    RegisteredApp,
    identity_routes,
)
from emulators.runner import RunningServer, free_port, serve_in_thread
from emulators.test_ca import TlsFiles, create_test_ca

DELTA_TOKEN_LIFETIME = 7 * 24 * 3600.0


def recipient(text: str) -> Recipient:
    """`"Name <a@b.c>"` or `"a@b.c"` as a Recipient."""
    name, address = email.utils.parseaddr(text)
    return Recipient(name, address)


class MicrosoftEmulator:
    """Identity platform and Graph mail sharing one directory, one mailbox store, one clock."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        tenant_id: str | None = None,
        notification_verify: ssl.SSLContext | bool = True,
        require_https_notifications: bool = True,
        max_concurrent: int = 4,
        request_budget: int = 10_000,
        budget_window: float = 600.0,
        default_page_size: int = 10,
        delta_token_lifetime: float = DELTA_TOKEN_LIFETIME,
        empty_first_delta_page: bool = True,
        access_token_lifetime: int = 3599,
        require_pkce: bool = True,
    ) -> None:
        self.clock = clock
        self.identity = IdentityPlatform(
            tenant_id=tenant_id,
            clock=clock,
            access_token_lifetime=access_token_lifetime,
            require_pkce=require_pkce,
        )
        self.store = GraphStore(clock)
        self.throttle = MailboxThrottle(
            clock,
            max_concurrent=max_concurrent,
            request_budget=request_budget,
            budget_window=budget_window,
        )
        self.subscriptions = SubscriptionHub(
            self.store,
            clock,
            tenant_id=self.identity.tenant_id,
            verify=notification_verify,
            require_https=require_https_notifications,
        )
        self.api = GraphApi(
            store=self.store,
            identity=self.identity,
            throttle=self.throttle,
            subscriptions=self.subscriptions,
            delta_tokens=DeltaTokens(secrets.token_bytes(32), clock, delta_token_lifetime),
            clock=clock,
            default_page_size=default_page_size,
            empty_first_delta_page=empty_first_delta_page,
        )

    @property
    def tenant_id(self) -> str:
        return self.identity.tenant_id

    def app(self) -> Starlette:
        """One ASGI app for the identity platform, Graph and the controls."""
        return Starlette(
            routes=[*control_routes(self), *self.api.routes(), *identity_routes(self.identity)]
        )

    def close(self) -> None:
        """Stop the notification delivery thread."""
        self.subscriptions.close()

    # -- directory ----------------------------------------------------------------------------

    def register_app(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: Iterable[str],
        default_scopes: Iterable[str] = DEFAULT_APP_SCOPES,
    ) -> RegisteredApp:
        return self.identity.register_app(client_id, client_secret, redirect_uris, default_scopes)

    def add_user(
        self, address: str, display_name: str = "", *, oid: str | None = None
    ) -> DirectoryUser:
        """A directory user with a mailbox (well-known folders, no mail yet)."""
        user = self.identity.add_user(address, display_name, oid=oid)
        self.store.create_mailbox(user.oid, user.username, user.display_name)
        return user

    def user_id(self, user_ref: str) -> str:
        """A user's object id from their object id or address."""
        return self.identity.user(user_ref).oid

    def revoke_grants(self, user_ref: str, client_id: str | None = None) -> None:
        self.identity.revoke_grants(user_ref, client_id)

    def expire_access_tokens(self, user_ref: str | None = None) -> None:
        self.identity.expire_access_tokens(user_ref)

    def issue_access_token(
        self, user_ref: str, client_id: str, scopes: Iterable[str] = DEFAULT_APP_SCOPES
    ) -> str:
        return self.identity.issue_access_token(user_ref, client_id, scopes)

    # -- mail ---------------------------------------------------------------------------------

    def deliver(
        self,
        user_ref: str,
        mime: bytes,
        *,
        folder: str = "inbox",
        received_at: datetime | None = None,
        is_read: bool = False,
        flag_status: str = "notFlagged",
        categories: Iterable[str] = (),
    ) -> MailMessage:
        """Deliver RFC 822 bytes into a folder (id or well-known name)."""
        return self.store.deliver(
            self.user_id(user_ref),
            folder,
            mime,
            received_at=received_at,
            is_read=is_read,
            flag_status=flag_status,
            categories=categories,
        )

    def add_message(
        self,
        user_ref: str,
        *,
        folder: str = "inbox",
        subject: str = "",
        sender: str = "Sender <sender@example.com>",
        to: Iterable[str] | None = None,
        cc: Iterable[str] = (),
        text: str | None = None,
        html: str | None = None,
        attachments: Iterable[Attachment] = (),
        message_id: str | None = None,
        in_reply_to: str | None = None,
        references: Iterable[str] = (),
        received_at: datetime | None = None,
        is_read: bool = False,
        flag_status: str = "notFlagged",
        categories: Iterable[str] = (),
    ) -> MailMessage:
        """Compose a simple message (to the mailbox owner by default) and deliver it."""
        owner = self.identity.user(user_ref)
        mime = build_mime(
            subject=subject,
            sender=recipient(sender),
            to=[recipient(r) for r in (to if to is not None else [owner.username])],
            cc=[recipient(r) for r in cc],
            text=text,
            html=html,
            attachments=attachments,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=references,
            date=received_at,
        )
        return self.deliver(
            user_ref,
            mime,
            folder=folder,
            received_at=received_at,
            is_read=is_read,
            flag_status=flag_status,
            categories=categories,
        )

    def message(self, user_ref: str, message_ref: str) -> MailMessage:
        return self.store.message(self.user_id(user_ref), message_ref)

    def update_message(self, user_ref: str, message_ref: str, **changes: Any) -> MailMessage:
        """Change is_read, flag_status, categories or importance."""
        return self.store.update_message(self.user_id(user_ref), message_ref, **changes)

    def move_message(self, user_ref: str, message_ref: str, folder: str) -> MailMessage:
        return self.store.move_message(self.user_id(user_ref), message_ref, folder)

    def delete_message(self, user_ref: str, message_ref: str) -> None:
        self.store.delete_message(self.user_id(user_ref), message_ref)

    def folder(self, user_ref: str, folder_ref: str) -> MailFolder:
        return self.store.folder(self.user_id(user_ref), folder_ref)

    def folders(self, user_ref: str) -> list[MailFolder]:
        """Every folder of the mailbox (the whole tree, flat)."""
        return self.store.folders(self.user_id(user_ref), "*")

    def create_folder(
        self, user_ref: str, display_name: str, parent: str | None = None
    ) -> MailFolder:
        return self.store.create_folder(self.user_id(user_ref), display_name, parent)

    def rename_folder(self, user_ref: str, folder_ref: str, display_name: str) -> MailFolder:
        return self.store.rename_folder(self.user_id(user_ref), folder_ref, display_name)

    def delete_folder(self, user_ref: str, folder_ref: str) -> None:
        self.store.delete_folder(self.user_id(user_ref), folder_ref)

    def expire_delta_tokens(self, user_ref: str, folder: str | None = None) -> None:
        """Make delta/skip tokens of one folder (or of the whole mailbox) answer 410."""
        self.store.expire_delta_tokens(self.user_id(user_ref), folder)

    # -- faults and observation ---------------------------------------------------------------

    def inject_fault(
        self,
        status: int = 429,
        count: int = 1,
        retry_after: int | None = None,
        user_ref: str | None = None,
    ) -> None:
        """The next ``count`` Graph requests (to one mailbox, or any) answer ``status``."""
        mailbox = self.user_id(user_ref) if user_ref else None
        self.throttle.inject_fault(status, count, retry_after, mailbox)

    def set_latency(self, seconds: float) -> None:
        self.throttle.set_latency(seconds)

    def stats(self) -> JSONObject:
        """maxConcurrent per mailbox, the request log, earlyRequests, throttled."""
        return self.throttle.stats()

    def reset_stats(self) -> None:
        self.throttle.reset_stats()

    def send_lifecycle_event(self, subscription_id: str, event: str) -> None:
        self.subscriptions.send_lifecycle_event(subscription_id, event)

    def notifications(self) -> list[Delivery]:
        """Every notification POST attempted so far."""
        return self.subscriptions.deliveries()

    def wait_for_notifications(self, timeout: float = 5.0) -> bool:
        return self.subscriptions.wait_until_delivered(timeout)


@dataclass(frozen=True)
class RunningMicrosoftEmulator:
    """Where a served emulator answers, and the CA that clients must trust."""

    emulator: MicrosoftEmulator
    server: RunningServer
    tls: TlsFiles

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def graph_url(self) -> str:
        return f"{self.server.base_url}/v1.0"

    def authority(self, tenant: str | None = None) -> str:
        """The MSAL authority URL (`tenant` defaults to the emulated tenant's id)."""
        return f"{self.server.base_url}/{tenant or self.emulator.tenant_id}"


@contextmanager
def serve_microsoft_emulator(
    emulator: MicrosoftEmulator, tls: TlsFiles
) -> Iterator[RunningMicrosoftEmulator]:
    """Serve ``emulator.app()`` over https on a free loopback port until the block ends."""
    with serve_in_thread(
        emulator.app(), ssl_certfile=str(tls.cert_path), ssl_keyfile=str(tls.key_path)
    ) as server:
        try:
            yield RunningMicrosoftEmulator(emulator, server, tls)
        finally:
            emulator.close()


def main(argv: list[str] | None = None) -> None:
    """Serve the emulator in the foreground for another process to use."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tls-dir", type=Path, required=True, help="where to write the test CA")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    tls = create_test_ca(args.tls_dir)
    port = args.port or free_port(args.host)
    emulator = MicrosoftEmulator(notification_verify=tls.client_context())
    announcement = {
        "base_url": f"https://{args.host}:{port}",
        "ca_path": str(tls.ca_path),
        "tenant_id": emulator.tenant_id,
    }
    print(json.dumps(announcement), flush=True)
    uvicorn.run(
        emulator.app(),
        host=args.host,
        port=port,
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        log_level="warning",
    )


if __name__ == "__main__":
    main()
