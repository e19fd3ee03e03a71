"""The compiled read path: which operations take it, what falls back, and that each answer is
byte for byte the one graphql-core gives (an app with ``fast_path`` off beside one with it on,
on the same database). The generated differential test covers breadth; these pin the cases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from app import clock
from app.models import Account, Owner
from app.settings import Settings
from app.types import Action, FolderRole
from resolvers.compiled.paths import ExecutionPaths
from resolvers.ids import encode_id
from tests.factories import (
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
    make_token,
)
from tests.support.fast_path_apps import fast_path_servers

LATEST = """query Latest($account: ID!) {
  messages(first: 50, filter: {accountId: $account}) {
    nodes { id subject from { name address } to { name address } snippet date
            labels { name } unread }
  }
}"""

NESTED = """query Nested($skipCount: Boolean!, $withPage: Boolean = true) {
  threads(first: 5) {
    __typename
    totalCount @skip(if: $skipCount)
    edges { cursor node { ...ThreadFields } }
    pageInfo @include(if: $withPage) { hasNextPage hasPreviousPage startCursor endCursor }
  }
  mine: folders { id name role totalCount unreadCount }
  me: currentToken { scopes }
}
fragment ThreadFields on Thread {
  id subject participants { address }
  latest: messages(first: 2) {
    nodes { __typename id ... on Message { subject cc { address } references labels { id } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

NODE = """query One($id: ID!) { node(id: $id) { __typename id ... on Message { subject } } }"""

_ERROR_ID = re.compile(rb'"errorId":"[0-9a-f]+"')


@dataclass
class Mailbox:
    owner: Owner
    token: str
    account: Account
    message_ids: list[int]


@dataclass
class Pair:
    """The same database behind graphql-core only (``off``) and the compiled path (``on``)."""

    off: httpx.AsyncClient
    on: httpx.AsyncClient
    paths: ExecutionPaths

    async def ask(self, token: str, query: str, **variables: Any) -> tuple[bytes, bytes]:
        """Both answers (status and body), after checking they are identical."""
        answers = []
        for client in (self.off, self.on):
            response = await client.post(
                "/graphql",
                content=orjson.dumps({"query": query, "variables": variables}),
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
            answers.append(
                f"{response.status_code} ".encode() + _ERROR_ID.sub(b"-", response.content)
            )
        off, on = answers
        assert off == on
        return off, on

    def taken(self) -> tuple[int, int]:
        return self.paths.planned, self.paths.fallback


@pytest.fixture(scope="module")
async def pair(db: Settings) -> AsyncIterator[Pair]:
    async with fast_path_servers(db) as servers:
        yield Pair(servers.off, servers.on, servers.on_paths)


@pytest.fixture
async def mailbox() -> Mailbox:
    made = await make_owner()
    account = await make_account(made.owner)
    inbox = await make_folder(account, provider_id="INBOX", name="Inbox", role=FolderRole.INBOX)
    work = await make_folder(account, name="Work")
    ids = []
    for t in range(3):
        thread = await make_thread(account, last_message_at=clock.now() - timedelta(hours=t))
        for m in range(3):
            message = await make_message(
                account,
                folders=[inbox] + ([work] if m % 2 else []),
                thread_id=thread.id,
                date=clock.now() - timedelta(hours=t, minutes=m),
                cc_addresses=[{"name": "", "email": f"cc{m}@example.com"}],
                references=[f"<r{m}@example.com>"],
            )
            ids.append(message.id)
    return Mailbox(made.owner, made.token, account, ids)


async def test_the_read_query_is_compiled_and_answers_as_graphql_core(
    pair: Pair, mailbox: Mailbox
) -> None:
    before = pair.taken()
    off, _ = await pair.ask(mailbox.token, LATEST, account=encode_id("Account", mailbox.account.id))
    assert pair.taken() == (before[0] + 1, before[1])
    body = orjson.loads(off.partition(b" ")[2])
    assert len(body["data"]["messages"]["nodes"]) == 9
    assert list(body["data"]["messages"]["nodes"][0]) == [
        "id", "subject", "from", "to", "snippet", "date", "labels", "unread",
    ]  # fmt: skip


@pytest.mark.parametrize("skip_count", [False, True])
@pytest.mark.parametrize("with_page", [False, True])
async def test_nested_lists_fragments_aliases_and_switches_are_compiled(
    pair: Pair, mailbox: Mailbox, skip_count: bool, with_page: bool
) -> None:
    before = pair.taken()
    off, _ = await pair.ask(mailbox.token, NESTED, skipCount=skip_count, withPage=with_page)
    assert pair.taken() == (before[0] + 1, before[1])
    threads = orjson.loads(off.partition(b" ")[2])["data"]["threads"]
    assert ("totalCount" in threads) is not skip_count
    assert ("pageInfo" in threads) is with_page
    latest = threads["edges"][0]["node"]["latest"]["nodes"]
    assert [list(node) for node in latest] == [
        ["__typename", "id", "subject", "cc", "references", "labels"]
    ] * 2


async def test_interfaces_are_compiled(pair: Pair, mailbox: Mailbox) -> None:
    before = pair.taken()
    off, _ = await pair.ask(mailbox.token, NODE, id=encode_id("Message", mailbox.message_ids[0]))
    assert pair.taken() == (before[0] + 1, before[1])
    assert b'"__typename":"Message"' in off


async def test_a_missing_scope_falls_back_to_graphql_cores_forbidden(
    pair: Pair, mailbox: Mailbox
) -> None:
    token = await make_token(mailbox.owner, actions={Action.ACCOUNTS_READ})
    before = pair.taken()
    off, _ = await pair.ask(token, LATEST, account=encode_id("Account", mailbox.account.id))
    assert pair.taken() == (before[0], before[1] + 1)
    assert b'"FORBIDDEN"' in off
    assert b'"missingScope":"messages:metadata"' in off


async def test_an_error_in_a_run_falls_back_to_graphql_cores_error(
    pair: Pair, mailbox: Mailbox
) -> None:
    query = "query Bad($after: String) { threads { nodes { messages(after: $after) { nodes { id } } } } }"  # noqa: E501
    before = pair.taken()
    off, _ = await pair.ask(mailbox.token, query, after="not-a-cursor")
    assert pair.taken() == (before[0], before[1] + 1)
    assert b'"BAD_USER_INPUT"' in off
    assert b'"path":["threads","nodes",0,"messages"]' in off


async def test_introspection_and_mutations_fall_back(pair: Pair, mailbox: Mailbox) -> None:
    before = pair.taken()
    await pair.ask(mailbox.token, "{ __schema { queryType { name } } }")
    await pair.ask(mailbox.token, 'mutation { revokeToken(id: "bm8tc3VjaA") { __typename } }')
    assert pair.taken() == (before[0], before[1] + 2)


async def test_metrics_count_the_paths(pair: Pair, mailbox: Mailbox) -> None:
    query = "query MetricsPaths { currentToken { scopes } }"
    before = pair.paths.direct
    await pair.ask(mailbox.token, query)
    await pair.ask(mailbox.token, query)  # accepted before: the direct path
    assert pair.paths.direct == before + 1
    response = await pair.on.get("/metrics")
    for path, count in pair.paths.counts().items():
        assert f'inbox_api_graphql_execution_total{{path="{path}"}} {count:.1f}' in response.text
    assert set(pair.paths.counts()) == {"direct", "compiled", "fallback"}
