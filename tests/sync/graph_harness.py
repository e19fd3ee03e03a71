"""Helpers the Graph sync tests and ``scripts/bench_sync_graph.py`` share: connected Microsoft
accounts on the production adapters, and the emulated Graph mailbox as the truth.

The sync runs exactly as in production: ``sync.sessions.AdapterFactory`` builds a ``GraphAdapter``
whose token source (``OAuthTokenSource``) opens the account's sealed tokens and refreshes them
with MSAL at the emulated identity platform, over https with the emulator's test CA. An account
is connected the way the identity platform hands out a grant (``sign_in``: an authorization
code with PKCE, redeemed for an access and a refresh token) and ``connect_graph_account`` seals
that grant in the vault.

``graph_truth(store, oid)`` is what the emulated mailbox holds, in the shape ``graph_cache_truth``
gives the cache (``tests.sync.harness.cache_snapshot``): messages by immutable id (thread,
folder and categories, flags, Message-ID) and folders by id (name, parent, role).

Across processes (the benchmark): ``graph_emulator_process()`` runs ``python -m
emulators.graph_emulator`` on its own and ``RemoteGraph`` drives its ``/_emulator`` controls.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.models import Account, Owner
from app.services.connect_microsoft import GRAPH_SCOPES
from app.services.token_sources import TokenGrant, store_grant
from app.settings import Settings
from app.types import AccountId, Provider
from emulators.graph_store import GraphStore
from emulators.graph_testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_REDIRECT_URI
from sync.providers.graph_records import CATEGORY_PREFIX
from tests.factories import make_account
from tests.sync.harness import CacheSnapshot, wait_until_serving

ROOT_FOLDER = "msgfolderroot"


class ShiftableClock:
    """The emulator's clock: real time, plus whatever a test moved it forward by (to match
    ``app.clock.travel`` without sleeping through a Retry-After)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def graph_settings(base: Settings, base_url: str, tenant_id: str, ca_path: Path) -> Settings:
    """``base`` pointed at an emulated Microsoft cloud (identity platform and Graph)."""
    return Settings(
        database_url=base.effective_database_url,
        data_dir=base.data_dir,
        embedded_worker=False,
        microsoft_client_id=TEST_CLIENT_ID,
        microsoft_client_secret=TEST_CLIENT_SECRET,
        microsoft_authority=f"{base_url}/{tenant_id}",
        microsoft_ca_file=ca_path,
        graph_api_base=base_url,
    )


def graph_environment(base_url: str, tenant_id: str, ca_path: Path) -> dict[str, str]:
    """``graph_settings`` as the ``INBOX_API_*`` variables of a worker process."""
    return {
        "INBOX_API_MICROSOFT_CLIENT_ID": TEST_CLIENT_ID,
        "INBOX_API_MICROSOFT_CLIENT_SECRET": TEST_CLIENT_SECRET,
        "INBOX_API_MICROSOFT_AUTHORITY": f"{base_url}/{tenant_id}",
        "INBOX_API_MICROSOFT_CA_FILE": str(ca_path),
        "INBOX_API_GRAPH_API_BASE": base_url,
    }


async def sign_in(base_url: str, tenant_id: str, ca_path: Path, address: str) -> TokenGrant:
    """The grant the identity platform gives the test app for ``address``: authorization code
    (PKCE, answered to the redirect URI as a query), redeemed at the token endpoint."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    oauth = f"{base_url}/{tenant_id}/oauth2/v2.0"
    scopes = " ".join(("offline_access", *GRAPH_SCOPES))
    async with httpx.AsyncClient(verify=_trusting(ca_path), trust_env=False) as http:
        answer = await http.get(
            f"{oauth}/authorize",
            params={
                "client_id": TEST_CLIENT_ID,
                "response_type": "code",
                "redirect_uri": TEST_REDIRECT_URI,
                "response_mode": "query",
                "scope": scopes,
                "login_hint": address,
                "code_challenge": challenge.decode().rstrip("="),
                "code_challenge_method": "S256",
            },
        )
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        tokens = await http.post(
            f"{oauth}/token",
            data={
                "grant_type": "authorization_code",
                "client_id": TEST_CLIENT_ID,
                "client_secret": TEST_CLIENT_SECRET,
                "code": code,
                "redirect_uri": TEST_REDIRECT_URI,
                "code_verifier": verifier,
                "scope": scopes,
            },
        )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return TokenGrant.from_response(body["access_token"], body["expires_in"], body["refresh_token"])


async def connect_graph_account(
    owner: Owner, address: str, grant: TokenGrant, **overrides: Any
) -> Account:
    """A Microsoft account of ``owner`` for ``address`` with ``grant`` sealed in the vault."""
    account = await make_account(owner, provider=Provider.GRAPH, address=address, **overrides)
    await store_grant(AccountId(account.id), grant)
    return account


def graph_truth(store: GraphStore, oid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(messages, folders) of an emulated mailbox in ``graph_cache_truth``'s shape."""
    messages = {
        message.immutable_id: {
            "thread": message.conversation_id,
            "label_ids": sorted(
                [message.folder_id, *(f"{CATEGORY_PREFIX}{c}" for c in message.categories)]
            ),
            "folders": [message.folder_id],
            "unread": not message.is_read,
            "starred": message.flag_status == "flagged",
            "message_id_header": message.internet_message_id,
        }
        for message in store.messages(oid)
    }
    root = store.folder(oid, ROOT_FOLDER).id
    folders = {
        folder.id: {
            "name": folder.display_name,
            "parent": None if folder.parent_id == root else folder.parent_id,
        }
        for folder in store.folders(oid, "*")
    }
    return messages, folders


def graph_cache_truth(snapshot: CacheSnapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cache in ``graph_truth``'s shape."""
    messages = {
        pid: {
            "thread": message["thread"],
            "label_ids": sorted(message["label_ids"]),
            "folders": message["labels"],
            "unread": message["unread"],
            "starred": message["starred"],
            "message_id_header": message["message_id_header"],
        }
        for pid, message in snapshot.messages.items()
    }
    folders = {
        pid: {"name": folder["name"], "parent": folder["parent_provider_id"]}
        for pid, folder in snapshot.folders.items()
    }
    return messages, folders


def _trusting(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))


@dataclass(frozen=True)
class RemoteGraph:
    """An emulator in another process: where it answers, its tenant and CA, its controls."""

    base_url: str
    tenant_id: str
    ca_path: Path

    def context(self) -> ssl.SSLContext:
        """An SSL context that trusts the emulator's CA alone."""
        return _trusting(self.ca_path)

    def control(self, timeout: float = 600) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{self.base_url}/_emulator",
            verify=self.context(),
            trust_env=False,
            timeout=timeout,
        )


@contextmanager
def graph_emulator_process(tls_dir: Path) -> Iterator[RemoteGraph]:
    """The Microsoft emulator in its own process (https with a fresh test CA in ``tls_dir``),
    with the test app registered; yields once it answers."""
    command = [sys.executable, "-m", "emulators.graph_emulator", f"--tls-dir={tls_dir}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        remote = RemoteGraph(
            announced["base_url"], announced["tenant_id"], Path(announced["ca_path"])
        )
        app = {
            "clientId": TEST_CLIENT_ID,
            "clientSecret": TEST_CLIENT_SECRET,
            "redirectUris": [TEST_REDIRECT_URI],
        }

        def register_app() -> None:
            with httpx.Client(verify=remote.context(), trust_env=False) as http:
                http.post(f"{remote.base_url}/_emulator/apps", json=app).raise_for_status()

        wait_until_serving(register_app)
        yield remote
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
