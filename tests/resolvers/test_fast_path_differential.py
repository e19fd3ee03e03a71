"""The compiled read path answers exactly as graphql-core does, byte for byte.

Two applications share the test database: one with ``fast_path`` off (every operation through
graphql-core) and one with it on. Hundreds of generated queries (``tests.support.
graphql_queries``) are POSTed to both with tokens of different scopes, accounts and owners;
status, content type and body bytes (data, errors with their codes and paths, key order) must
be identical. A failure prints the query, its variables and the token, and names the seed and
number that rebuild it: ``QueryGenerator(pools, seed=S).query(N)``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from app import clock
from app.models import Credential, Folder, Message, SyncState, Thread
from app.settings import Settings
from app.types import (
    ALL_ACTIONS,
    AccountStatus,
    Action,
    CredentialKind,
    FolderRole,
    Provider,
    SyncPhase,
)
from resolvers.ids import decode_id, encode_id
from tests.factories import (
    address,
    make_account,
    make_folder,
    make_message,
    make_owner,
    make_thread,
    make_token,
)
from tests.support.fast_path_apps import Servers, fast_path_servers
from tests.support.graphql_queries import GeneratedQuery, Pools, QueryGenerator

# Account.sync.lagSeconds reads the clock: both applications must see the same instant.
NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
SEEDS = (1, 2, 3, 4)
QUERIES_PER_SEED = 100
# How often graphql-core is asked again when the compiled path's answer differs from its own.
RETRIES = 8
# The same error id on both sides: it is random per error by design.
_ERROR_ID = re.compile(rb'"errorId":"[0-9a-f]+"')


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def parsed(self) -> dict[str, Any]:
        """The JSON body; empty when the application raised."""
        return orjson.loads(self.body) if self.status else {}


@dataclass
class World:
    tokens: dict[str, str | None]
    pools: Pools


@pytest.fixture(autouse=True)
def _frozen_clock() -> None:
    clock.freeze(NOW)


@pytest.fixture(scope="module")
async def servers(db: Settings) -> AsyncIterator[Servers]:
    async with fast_path_servers(db) as both:
        yield both


async def ask(client: httpx.AsyncClient, token: str | None, body: dict[str, Any]) -> Answer:
    """The answer to ``body``; an exception that escapes the application is an answer too
    (``status`` 0), so both paths must fail alike."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
    except (Exception, asyncio.CancelledError) as error:
        return Answer(0, "raised", repr(error).encode())
    return Answer(
        response.status_code,
        response.headers.get("content-type", ""),
        _ERROR_ID.sub(b'"errorId":"-"', response.content),
    )


# --- the seeded world --------------------------------------------------------------------------


async def _account_with_mail(owner: Any, number: int, **fields: Any) -> dict[str, list[str]]:
    """An account with folders (one nested), threads and messages of every kind; the global
    ids of what it holds, by type."""
    account = await make_account(owner, **fields)
    ids: dict[str, list[str]] = {"Account": [encode_id("Account", account.id)]}
    roles = (
        ("INBOX", "Inbox", FolderRole.INBOX),
        ("SENT", "Sent", FolderRole.SENT),
        ("DRAFT", "Drafts", FolderRole.DRAFTS),
        ("TRASH", "Trash", FolderRole.TRASH),
        ("Label_1", "Reçus 📬", FolderRole.CUSTOM),
    )
    folders = [
        await make_folder(
            account, provider_id=pid, name=name, role=role, total_count=n * 3, unread_count=n
        )
        for n, (pid, name, role) in enumerate(roles)
    ]
    folders.append(
        await make_folder(
            account, provider_id="Label_2", name="Reçus/2026", parent_provider_id="Label_1"
        )
    )
    ids["Folder"] = [encode_id("Folder", f.id) for f in folders]
    threads = [
        await make_thread(
            account,
            subject=subject,
            snippet=f"thread {t} of {number}",
            participants=[address(f"p{t}@example.com", "Ünïcode Name"), address("x@example.com")],
            last_message_at=NOW - timedelta(hours=t * 7 + number),
            message_count=t + 1,
            unread_count=t % 2,
        )
        for t, subject in enumerate(("Quarterly plan", "", "Ärger mit 日本語", "Re: lunch"))
    ]
    # A thread whose first message has not arrived: not listed, but found by id.
    waiting = await make_thread(account, subject="no message yet", last_message_at=None)
    ids["Thread"] = [encode_id("Thread", t.id) for t in [*threads, waiting]]
    messages = []
    for m in range(6 + number * 4):
        thread = threads[m % len(threads)] if m % 5 else None
        many = [address(f"r{r}@example.org", f"Recipient {r}") for r in range(m % 4 * 4)]
        message = await make_message(
            account,
            folders=[folders[m % 5]] + ([folders[5]] if m % 3 == 0 else []),
            thread=thread,
            subject=("", "Hello", "Grüße aus Köln", "Ω≈ç√ — 🎉", "plan for the quarter")[m % 5],
            from_addresses=[] if m % 7 == 0 else [address(f"s{m % 3}@example.com", "Sénder")],
            to_addresses=many,
            cc_addresses=many[:2],
            bcc_addresses=many[2:3],
            reply_to_addresses=[address("reply@example.com")] if m % 4 == 1 else [],
            references=[f"<ref{r}@example.com>" for r in range(m % 3)],
            # Ties on the date make the id decide the order.
            date=NOW - timedelta(hours=(m // 2) * 5 + number),
            snippet="" if m % 6 == 0 else f"snippet {m} — ünïcode",
            unread=m % 3 == 0,
            starred=m % 4 == 0,
            draft=m % 9 == 0,
            size=1000 + m,
            message_id_header=None if m % 8 == 0 else f"<m{m}.{number}@example.com>",
            in_reply_to=f"<m{m - 1}.{number}@example.com>" if m % 5 == 2 else None,
            label_ids=[folders[m % 5].provider_id, "Label_gone"],
            body=_body(m),
            attachments=_attachments(m),
        )
        messages.append(message)
    ids["Message"] = [encode_id("Message", message.id) for message in messages]
    return ids


def _body(m: int) -> dict[str, Any] | None:
    if m % 3 == 2:
        return None
    return {
        "text_body": f"Text body {m}" if m % 2 else None,
        "html_body": "<p onclick='x()'>Hi <img src='https://t.example/p.png'></p>"
        if m % 2 == 0
        else None,
        "headers": [["Subject", f"Message {m}"], ["X-Mailer", "ü"]],
        "raw_mime": b"Subject: hi\r\n\r\nbody\r\n" if m % 4 == 0 else None,
    }


def _attachments(m: int) -> list[dict[str, Any]]:
    if m % 4 != 3:
        return []
    return [
        {"filename": "plan.pdf", "content_type": "application/pdf", "size": 1234},
        {
            "filename": "logo.png",
            "content_type": "image/png",
            "size": 99,
            "content_id": "logo",
            "inline": True,
        },
    ]


async def _deleted_ids(owner: Any) -> list[str]:
    """Ids of a message, thread and folder that existed and were deleted."""
    account = await make_account(owner)
    folder = await make_folder(account)
    thread = await make_thread(account)
    message = await make_message(account, thread=thread, folders=[folder])
    ids = [
        encode_id("Message", message.id),
        encode_id("Thread", thread.id),
        encode_id("Folder", folder.id),
        encode_id("Account", account.id),
    ]
    await Message.filter(id=message.id).delete()
    await Thread.filter(id=thread.id).delete()
    await Folder.filter(id=folder.id).delete()
    await account.delete()
    return ids


@pytest.fixture(scope="module")
async def world(db: Settings, servers: Servers) -> World:
    clock.freeze(NOW)
    first, second = await make_owner(name="Zoë"), await make_owner()
    a1 = await _account_with_mail(first.owner, 1, display_name="Zoë Müller")
    a2 = await _account_with_mail(first.owner, 2, provider=Provider.GRAPH, display_name="")
    a3 = await _account_with_mail(
        first.owner, 0, provider=Provider.IMAP, status=AccountStatus.NEEDS_REAUTH, retention_days=30
    )
    b1 = await _account_with_mail(second.owner, 3)
    accounts = [a1["Account"][0], a2["Account"][0], a3["Account"][0]]
    await _sync_and_credentials(accounts)
    owner = first.owner
    every = set(ALL_ACTIONS)
    metadata = {Action.MESSAGES_METADATA}
    tokens: dict[str, str | None] = {
        "A: every scope": first.token,
        "A: messages:metadata": await make_token(owner, actions=metadata),
        "A: accounts:read": await make_token(owner, actions={Action.ACCOUNTS_READ}),
        "A: metadata+content": await make_token(
            owner, actions=metadata | {Action.MESSAGES_CONTENT}
        ),
        "A: first account only": await make_token(
            owner, actions=every, account_ids=[_number(accounts[0])]
        ),
        "A: metadata+accounts:read, 2nd and 3rd account": await make_token(
            owner,
            actions=metadata | {Action.ACCOUNTS_READ},
            account_ids=[_number(a) for a in accounts[1:]],
        ),
        "B: every scope": second.token,
        "no token": None,
    }
    deleted = await _deleted_ids(owner)
    ids = {
        kind: a1[kind] + a2[kind] + a3[kind] + b1[kind]
        for kind in ("Account", "Folder", "Thread", "Message")
    }
    ids["Malformed"] = [
        *deleted,
        "garbage",
        "",
        encode_id("Token", 1),
        encode_id("Message", 0),
        "TWVzc2FnZTox" * 6,
    ]
    pools = Pools(
        ids=ids,
        message_cursors=await _cursors(servers, first.token, "messages"),
        thread_cursors=await _cursors(servers, first.token, "threads"),
        texts=[
            "plan",
            "Köln",
            "ünïcode",
            "s1@example.com",
            "Recipient 3",
            "",
            "  ",
            "%_\\",
            "🎉",
            "x" * 321,
        ],
        dates=[(NOW - timedelta(hours=h)).isoformat() for h in (1, 12, 30)]
        + ["2026-03-01T00:00:00", "not a date"],
    )
    return World(tokens, pools)


def _number(global_id: str) -> int:
    decoded = decode_id(global_id)
    assert decoded is not None
    return decoded[1]


async def _sync_and_credentials(accounts: list[str]) -> None:
    first, _, third = (_number(a) for a in accounts)
    await SyncState.create(
        account_id=first, phase=SyncPhase.INCREMENTAL, last_success_at=NOW - timedelta(seconds=90)
    )
    await SyncState.create(
        account_id=third,
        phase=SyncPhase.BACKOFF,
        last_error_code="AUTH_REVOKED",
        last_success_at=NOW - timedelta(days=2),
    )
    await Credential.create(
        account_id=first, kind=CredentialKind.OAUTH_REFRESH_TOKEN, ciphertext=b"sealed", key_id="k1"
    )


async def _cursors(servers: Servers, token: str, field: str) -> list[str]:
    """Cursors of real pages: edges of the list and, for messages, of threads' messages."""
    nested = "nodes { messages(first: 3) { edges { cursor } } }" if field == "threads" else ""
    query = f"{{ {field}(first: 100) {{ edges {{ cursor }} {nested} }} }}"
    answer = (await ask(servers.off, token, {"query": query})).parsed
    assert "errors" not in answer, answer
    return [edge["cursor"] for edge in answer["data"][field]["edges"]]


# --- the comparison ----------------------------------------------------------------------------


def _token_label(world: World, generated: GeneratedQuery) -> str:
    rng = random.Random("token:" + generated.seed)
    labels = list(world.tokens)
    weights = [10 if label == "A: every scope" else 2 for label in labels]
    weights[labels.index("no token")] = 0.2
    return rng.choices(labels, weights)[0]


async def _among_graphql_core_answers(
    servers: Servers, token: str | None, generated: GeneratedQuery, on: Answer
) -> bool:
    """Whether graphql-core itself could give ``on``. When several fields fail at once and
    their null reaches the root, graphql-core reports the failure that completes first and
    cancels the rest; on PostgreSQL which one completes first varies (whichever query returns
    first). So: ``on`` is one of graphql-core's answers when asked again, or it differs only
    in which list item's failure it reports (the same error, another index in its path)."""
    seen = [await ask(servers.off, token, generated.body()) for _ in range(RETRIES)]
    if on in seen:
        return True
    return any(_same_failure_of_another_item(on, answer) for answer in seen)


def _same_failure_of_another_item(one: Answer, other: Answer) -> bool:
    if (one.status, one.content_type) != (other.status, other.content_type) or not one.status:
        return False
    first, second = one.parsed, other.parsed
    if first.get("data") is not None or second.get("data") is not None:
        return False
    return _without_indices(first.get("errors")) == _without_indices(second.get("errors"))


def _without_indices(errors: Any) -> Any:
    return [
        {**error, "path": ["#" if isinstance(p, int) else p for p in error.get("path") or ()]}
        for error in errors or ()
    ]


@pytest.mark.parametrize("seed", SEEDS)
async def test_generated_queries_answer_the_same(seed: int, servers: Servers, world: World) -> None:
    generator = QueryGenerator(world.pools, seed=seed)
    differences: list[str] = []
    answers: list[Any] = []
    paths = servers.on_paths
    planned_before, direct_before = paths.planned, paths.direct
    for number in range(QUERIES_PER_SEED):
        generated = generator.query(number)
        label = _token_label(world, generated)
        token = world.tokens[label]
        off = await ask(servers.off, token, generated.body())
        # Twice: a query text the schema accepted once is answered directly the second time.
        for attempt in ("first", "again"):
            on = await ask(servers.on, token, generated.body())
            if off != on and not await _among_graphql_core_answers(servers, token, generated, on):
                differences.append(
                    f"{generated.describe()}\ntoken: {label}\n"
                    f"fast_path off: {off.status} {off.body.decode()}\n"
                    f"fast_path on ({attempt}):  {on.status} {on.body.decode()}"
                )
        answers.append(off.parsed)
    assert not differences, (
        f"{len(differences)} of {QUERIES_PER_SEED} differ; the first:\n" + differences[0]
    )
    with_data = [a for a in answers if a.get("data") and not a.get("errors")]
    with_errors = [a for a in answers if a.get("errors")]
    assert len(with_data) >= QUERIES_PER_SEED // 3, "the generator made too few valid queries"
    assert len(with_errors) >= 5, "the generator made too few failing queries"
    # Most queries that graphql-core answers without an error took the compiled path (the
    # rest: a token without a scope the plan checks, a null @include condition).
    planned = paths.planned - planned_before
    assert planned >= len(with_data) * 2 * 2 // 3, (planned, len(with_data))
    # ... and the second time most of them without the request pipeline.
    direct = paths.direct - direct_before
    assert direct >= len(with_data) * 2 // 3, (direct, len(with_data))
    assert servers.off_paths.planned == 0  # fast_path off


# Found by this test (seed 3, query 69) on graphql-core itself, before any compiled path: when
# a field fails and its null propagates, graphql-core cancels the sibling fields still running;
# a content field among them awaited the request's shared content DataLoader future, which was
# cancelled with it, so another field awaiting the same body (``textBody`` here) got
# CancelledError and the request raised instead of answering FORBIDDEN (fixed in c39b41d).
DENIED_BESIDE_CONTENT = """{
  messages(first: 30) { nodes { rawHtmlBody account { id } } again: nodes { textBody } }
}"""


@pytest.mark.parametrize("side", ["off", "on"])
async def test_a_denied_field_beside_content_fields_answers_forbidden(
    side: str, servers: Servers, world: World
) -> None:
    client = servers.off if side == "off" else servers.on
    token = world.tokens["A: metadata+content"]
    answer = await ask(client, token, {"query": DENIED_BESIDE_CONTENT})
    assert answer.status == 200, answer.body
    body = answer.parsed
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


def test_the_generator_uses_every_feature(world: World) -> None:
    """The generated queries keep exercising what the compiled path must get right."""
    generator = QueryGenerator(world.pools, seed=SEEDS[0])
    queries = [generator.query(n) for n in range(QUERIES_PER_SEED)]
    documents = "\n".join(q.query for q in queries)
    for feature in (
        "fragment F",
        "... on Node",
        "... on Message",
        "...F",
        "__typename",
        "@include(if: $",
        "@skip(if: true)",
        "filter: {",
        "filter: $",
        "after: ",
        "before: ",
        "first: 1, last: 1",
        "query Other",
        "node1: node(",
    ):
        assert feature in documents, feature
    assert any(q.operation_name == "Q" for q in queries)
    assert any(len(q.variables) >= 5 for q in queries)
    twins = [q for q in queries if re.search(r"(messages\d+: messages\(.*){2}", q.query)]
    assert twins, "no query asks for one field twice under aliases"


@pytest.mark.parametrize("side", ["off", "on"])
async def test_a_thread_without_messages_yet_is_not_found_without_an_error(
    side: str, servers: Servers, world: World
) -> None:
    """Found by this test: a thread whose first message has not arrived (``last_message_at``
    still NULL, so no list shows it) fails ``thread(id:)`` and ``node(id:)`` with an internal
    error; like the lists, a lookup now does not find it."""
    client = servers.off if side == "off" else servers.on
    waiting = world.pools.ids["Thread"][4]  # the first account's thread without a message
    query = "query($id: ID!) { thread(id: $id) { id } node(id: $id) { id } }"
    answer = await ask(
        client, world.tokens["A: every scope"], {"query": query, "variables": {"id": waiting}}
    )
    assert answer.status == 200, answer.body
    assert "errors" not in answer.parsed, answer.body
    assert answer.parsed["data"] == {"thread": None, "node": None}  # in no list, so not found
