"""Every example under docs/examples runs, as printed, against a seeded server.

The server is the real application on a real port (``live_server``), on a cache seeded with an
account, folders, a thread and messages (one with an HTML body and an attachment). Queries and
mutations go over HTTP with the owner's token; subscriptions run in Python's gql client over
graphql-transport-ws and must receive the event that the test then causes (new mail applied as
the sync worker applies it, or an account needing re-authorisation). Each example declares its
variables; the test fills the ones it knows (ids of the seeded rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from graphql import OperationDefinitionNode, OperationType, parse
from pydantic import SecretStr

from app.models import Account
from app.services.token_sources import mark_needs_reauth
from app.services.vault_keys import configure_vault
from app.settings import Settings
from app.types import AccountId, FolderRole
from resolvers.context import Services
from resolvers.ids import encode_id
from tests.factories import make_folder, make_message, make_owner, make_thread
from tests.subscriptions.conftest import (
    LiveServer,
    LiveServerFactory,
    connection_init,
    deliver,
    listening,
    live_server,  # noqa: F401 (a fixture, used by name)
    new_account,
)
from vault import KeyRing, generate_key

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.graphql"))


@dataclass
class Seeded:
    token: str
    account: Account
    variables: dict[str, Any]


async def seed() -> Seeded:
    made = await make_owner(name="Zoë Müller", email="zoe@example.com")
    account = await new_account(made.owner.id)
    inbox = await make_folder(account, provider_id="INBOX", name="INBOX", role=FolderRole.INBOX)
    thread = await make_thread(account, subject="Budget 2025")
    first = await make_message(
        account,
        folders=[inbox],
        thread_id=thread.id,
        subject="Budget 2025",
        snippet="the budget numbers are attached",
        unread=True,
        body={
            "text_body": "Hello, the budget numbers are attached.",
            "html_body": '<p>Hello, the <b>budget</b> numbers.<img src="https://x.test/p.png"></p>',
            "headers": [["Subject", "Budget 2025"]],
        },
        attachments=[{"filename": "budget.csv", "content_type": "text/csv", "size": 120}],
    )
    await make_message(account, folders=[inbox], thread_id=thread.id, subject="Re: Budget 2025")
    variables = {
        "accountId": encode_id("Account", account.id),
        "messageId": encode_id("Message", first.id),
        "threadId": encode_id("Thread", thread.id),
        "search": "budget",
        "loginHint": "someone@gmail.example",
        "after": None,
    }
    return Seeded(made.token, account, variables)


def operation_of(path: Path) -> tuple[OperationType, dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    definitions = [d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(definitions) == 1, f"{path.name}: one operation per example"
    operation = definitions[0]
    assert operation.name is not None, f"{path.name}: name the operation"
    names = [v.variable.name.value for v in operation.variable_definitions or ()]
    return operation.operation, dict.fromkeys(names), text


def test_there_are_examples_of_each_kind() -> None:
    kinds = {operation_of(path)[0] for path in ALL_EXAMPLES}
    assert kinds == {OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION}


Trigger = Callable[[Services, Account], Awaitable[object]]
TRIGGERS: dict[str, Trigger] = {
    "new-mail.graphql": lambda services, account: deliver(services, account, "docs-new-mail"),
    "account-events.graphql": lambda services, account: mark_needs_reauth(
        AccountId(account.id), "DOCS_EXAMPLE", services.events
    ),
}


@pytest.fixture
def google_configured(db: Settings) -> Iterator[dict[str, Any]]:
    """connectGmail only builds Google's consent URL: a configured client and a vault (for the
    sealed PKCE verifier) are all it needs."""
    configure_vault(KeyRing([generate_key()]))
    yield {
        "google_client_id": "docs-example.apps.googleusercontent.com",
        "google_client_secret": SecretStr("docs-example-secret"),
    }
    configure_vault(None)


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda path: path.name)
async def test_the_example_runs_against_a_seeded_server(
    path: Path,
    live_server: LiveServerFactory,  # noqa: F811 (the fixture imported above)
    google_configured: dict[str, Any],
) -> None:
    kind, declared, text = operation_of(path)
    seeded = await seed()
    variables = {name: seeded.variables[name] for name in declared}
    async with live_server(**google_configured) as server:
        if kind is OperationType.SUBSCRIPTION:
            data = await subscribe_once(server, seeded, text, variables, TRIGGERS[path.name])
        else:
            data = await execute(server, seeded.token, text, variables)
    assert data, path.name
    for field, value in data.items():
        assert value is not None, f"{path.name}: {field} is null"
        if isinstance(value, dict):
            assert "code" not in value, f"{path.name}: {field} failed: {value}"


async def execute(
    server: LiveServer, token: str, text: str, variables: dict[str, Any]
) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            server.http_url,
            json={"query": text, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def subscribe_once(
    server: LiveServer, seeded: Seeded, text: str, variables: dict[str, Any], trigger: Trigger
) -> dict[str, Any]:
    transport = WebsocketsTransport(
        url=server.url,
        init_payload=connection_init(seeded.token),
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        events = session.subscribe(GraphQLRequest(text, variable_values=variables))
        first = asyncio.ensure_future(anext(events))
        await listening(server)
        await trigger(server.services, seeded.account)
        data: dict[str, Any] = await asyncio.wait_for(first, 5)
        await events.aclose()
    return data


async def test_the_content_example_shows_sanitised_html_and_attachments(
    live_server: LiveServerFactory,  # noqa: F811
) -> None:
    text = (EXAMPLES / "message-content.graphql").read_text(encoding="utf-8")
    seeded = await seed()
    async with live_server() as server:
        variables = {"messageId": seeded.variables["messageId"]}
        message = (await execute(server, seeded.token, text, variables))["message"]
    assert message["textBody"] == "Hello, the budget numbers are attached."
    assert message["hasRemoteImages"] is True
    assert ' src="https://x.test' not in message["htmlBody"]
    assert 'data-remote-src="https://x.test/p.png"' in message["htmlBody"]
    assert [a["filename"] for a in message["attachments"]] == ["budget.csv"]
    assert "/attachments/" in message["attachments"][0]["downloadUrl"]
