"""The Google and Microsoft emulators over https, and an app configured to connect to them.

Both emulators serve over https with their own test CA (Google's token endpoint must be https
for our code and for oauthlib alike; MSAL insists on an https authority). The app under test runs
through httpx's ASGI transport on the test session's database, with ``public_url`` equal to the
client's base URL, so the redirect the provider answers can be followed as it is.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.events import InProcessBus
from app.server import create_app
from app.services.vault_keys import configure_vault
from app.settings import Settings
from emulators.gmail_emulator import GoogleEmulator
from emulators.graph_testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, ServedEmulator
from emulators.graph_testing import serve_for_tests as serve_microsoft
from emulators.runner import RunningServer, serve_in_thread
from emulators.test_ca import TlsFiles, create_test_ca
from resolvers.context import Services
from tests.conftest import GraphQLCall
from vault import KeyRing, generate_key

PUBLIC_URL = "http://testserver"
GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET = "inbox-api-test.apps.example", "google-test-secret"
RETURN_ORIGIN = "https://app.example.com"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class ServedGoogle:
    emulator: GoogleEmulator
    server: RunningServer
    tls: TlsFiles

    def new_user(self, *, approve: bool = True) -> str:
        email = f"gmail-user{next(_numbers)}@example.com"
        self.emulator.add_user(email, approve=approve)
        return email

    def client(self) -> httpx.AsyncClient:
        """What the user's browser is: it trusts the emulator's CA."""
        return httpx.AsyncClient(verify=self.tls.client_context(), trust_env=False)


@pytest.fixture(scope="session")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGoogle]:
    tls = create_test_ca(tmp_path_factory.mktemp("google-tls"))
    emulator = GoogleEmulator(seed=7)
    emulator.register_client(
        GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, [f"{PUBLIC_URL}/oauth/callback/google"]
    )
    with serve_in_thread(
        emulator.app, ssl_certfile=str(tls.cert_path), ssl_keyfile=str(tls.key_path)
    ) as server:
        yield ServedGoogle(emulator, server, tls)
    emulator.push.close()


@pytest.fixture(scope="session")
def microsoft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_microsoft(tmp_path_factory.mktemp("microsoft-tls")) as served:
        served.emulator.register_app(
            TEST_CLIENT_ID, TEST_CLIENT_SECRET, [f"{PUBLIC_URL}/oauth/callback/microsoft"]
        )
        yield served


def connect_settings(
    base: Settings, google: ServedGoogle, microsoft: ServedEmulator, **overrides: Any
) -> Settings:
    urls = google.emulator.urls(google.server.base_url)
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "oauth_return_origins": [RETURN_ORIGIN],
        "google_client_id": GOOGLE_CLIENT_ID,
        "google_client_secret": GOOGLE_CLIENT_SECRET,
        "google_auth_uri": urls.auth_uri,
        "google_token_uri": urls.token_uri,
        "google_revoke_uri": urls.revoke_uri,
        "gmail_api_base": google.server.base_url,
        "google_ca_file": google.tls.ca_path,
        "microsoft_client_id": TEST_CLIENT_ID,
        "microsoft_client_secret": TEST_CLIENT_SECRET,
        "microsoft_authority": microsoft.running.authority(),
        "microsoft_ca_file": microsoft.tls.ca_path,
        "graph_api_base": microsoft.running.base_url,
        **overrides,
    }
    return Settings(
        database_url=base.effective_database_url,
        data_dir=base.data_dir,
        embedded_worker=False,
        **values,
    )


@pytest.fixture(scope="session")
def settings_for_connect(db: Settings, google: ServedGoogle, microsoft: ServedEmulator) -> Settings:
    return connect_settings(db, google, microsoft)


@pytest.fixture
def ring(db: Settings) -> Iterator[KeyRing]:
    ring = KeyRing([generate_key()])
    configure_vault(ring)
    yield ring
    configure_vault(None)


@pytest.fixture
def events() -> InProcessBus:
    return InProcessBus()


@dataclass(frozen=True)
class ConnectApp:
    http: httpx.AsyncClient
    gql: GraphQLCall
    services: Services


async def open_connect_app(settings: Settings, events: InProcessBus) -> AsyncIterator[ConnectApp]:
    app = create_app(settings)
    services: Services = app.app.state.services  # type: ignore[attr-defined]
    services.events = events  # events published here reach the test's subscribers
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:

        async def gql(token: str | None, query: str, **variables: Any) -> dict[str, Any]:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = await http.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            body: dict[str, Any] = response.json()
            body["_status"] = response.status_code
            return body

        yield ConnectApp(http, gql, services)


@pytest.fixture
async def connect_app(
    settings_for_connect: Settings, ring: KeyRing, events: InProcessBus
) -> AsyncIterator[ConnectApp]:
    async for app in open_connect_app(settings_for_connect, events):
        yield app
