"""GraphClient's answers to Graph's refusals, on an in-memory transport (no emulator needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from sync.providers.errors import (
    CursorExpired,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)
from sync.providers.graph_client import DeltaGone, GraphClient, ItemNotFound
from sync.providers.graph_state import SyncState

BASE = "https://graph.example.test"
SECRET_BODY = "secret-looking provider detail"
ACCESS_TOKEN = "eyJ0eXAi.access.token"


async def static_token(force_refresh: bool) -> str:
    return f"{ACCESS_TOKEN}-refreshed" if force_refresh else ACCESS_TOKEN


def refusal(status: int, code: str = "", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": SECRET_BODY}} if code else None
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
async def answer_with() -> AsyncIterator[Callable[[httpx.Response], GraphClient]]:
    opened: list[httpx.AsyncClient] = []

    def make(response: httpx.Response) -> GraphClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
        opened.append(http)
        return GraphClient(BASE, static_token, http=http)

    yield make
    for http in opened:
        await http.aclose()


@pytest.mark.parametrize(
    ("response", "error", "code"),
    [
        (refusal(410, "syncStateNotFound"), DeltaGone, "DELTA_GONE"),
        (refusal(400, "resyncRequired"), DeltaGone, "DELTA_GONE"),
        (refusal(400, "InvalidSyncStateData"), DeltaGone, "DELTA_GONE"),
        (refusal(404, "ErrorItemNotFound"), ItemNotFound, "NOT_FOUND"),
        (refusal(403, "ErrorAccessDenied"), PermanentError, "HTTP_403"),
        (refusal(400, "ErrorInvalidUrlQuery"), PermanentError, "HTTP_400"),
        (refusal(500, "generalException"), TransientError, "TRANSIENT"),
        (refusal(502), TransientError, "TRANSIENT"),
        (refusal(503, "ServiceUnavailable", **{"Retry-After": "3"}), TransientError, "TRANSIENT"),
        (refusal(504), TransientError, "TRANSIENT"),
        (refusal(429, "TooManyRequests"), RateLimited, "RATE_LIMITED"),
    ],
)
async def test_refusals_become_typed_errors_without_the_body(
    answer_with: Callable[[httpx.Response], GraphClient],
    response: httpx.Response,
    error: type[ProviderError],
    code: str,
) -> None:
    with pytest.raises(error) as raised:
        await answer_with(response).get_json("/v1.0/me/messages/x", "messages.get")
    assert raised.value.code == code
    assert SECRET_BODY not in str(raised.value)
    assert ACCESS_TOKEN not in str(raised.value)


@pytest.mark.parametrize(("header", "expected"), [("12", 12.0), ("0", 0.0), (None, None)])
async def test_retry_after_is_passed_on_exactly(
    answer_with: Callable[[httpx.Response], GraphClient],
    header: str | None,
    expected: float | None,
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    with pytest.raises(RateLimited) as raised:
        await answer_with(refusal(429, "TooManyRequests", **headers)).get_json("/v1.0/me", "me.get")
    assert raised.value.retry_after == expected


async def test_no_queued_request_goes_out_before_a_retry_after_has_passed() -> None:
    sent: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        await asyncio.sleep(0.01)  # the others queue for the one slot meanwhile
        return refusal(429, "TooManyRequests", **{"Retry-After": "30"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        client = GraphClient(BASE, static_token, http=http, max_concurrency=1)
        answers = await asyncio.gather(
            *(client.get_json(f"/v1.0/me/mailFolders/{n}", "mailFolders.get") for n in range(3)),
            return_exceptions=True,
        )
        later = await asyncio.gather(client.get_json("/v1.0/me", "me.get"), return_exceptions=True)

    # The queued two never went out; a later call is the engine's to time, and goes.
    assert sent == ["/v1.0/me/mailFolders/0", "/v1.0/me"]
    for refused in [*answers, *later]:
        assert isinstance(refused, RateLimited)
        assert refused.retry_after == 30


async def test_the_token_never_goes_to_another_host(
    answer_with: Callable[[httpx.Response], GraphClient],
) -> None:
    client = answer_with(httpx.Response(200, json={}))
    assert client.relative(f"{BASE}/v1.0/me/messages?$skiptoken=a") == (
        "/v1.0/me/messages?$skiptoken=a"
    )
    for foreign in ("https://evil.example/v1.0/me", f"{BASE}.evil.example/v1.0", f"{BASE}@evil"):
        with pytest.raises(PermanentError):
            await client.get_json(foreign, "messages.delta")


async def test_malformed_json_is_transient(
    answer_with: Callable[[httpx.Response], GraphClient],
) -> None:
    with pytest.raises(TransientError):
        await answer_with(httpx.Response(200, text="<html>proxy</html>")).get_json(
            "/v1.0/me", "me.get"
        )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"v": 1, "kind": "cursor"}',
        '{"v":1,"kind":"cursor","tree":"/t","root":null,"known":{},"folders":[{"id":"f",'
        '"name":"F","parent":null,"role":"custom","total":0,"unread":0,"link":null,'
        '"done":false,"restarted":false}]}',
    ],
)
def test_unreadable_or_unfinished_cursors_are_expired(text: str) -> None:
    with pytest.raises(CursorExpired):
        SyncState.decode(text, "cursor")


async def test_batch_answers_are_matched_by_id_and_a_missing_one_is_transient(
    answer_with: Callable[[httpx.Response], GraphClient],
) -> None:
    responses = [
        {"id": "1", "status": 404, "headers": {}, "body": {"error": {"code": "ErrorItemNotFound"}}},
        {"id": "0", "status": 200, "headers": {}, "body": {"value": []}},
    ]
    client = answer_with(httpx.Response(200, json={"responses": responses}))
    links = [f"/v1.0/me/messages/{n}/attachments" for n in range(3)]

    found, gone, missing = await client.get_json_batch(links, "attachments.list")

    assert found == {"value": []}
    assert isinstance(gone, ItemNotFound)
    assert isinstance(missing, TransientError)
    with pytest.raises(ValueError, match="1 to 20"):
        await client.get_json_batch(links * 7, "attachments.list")


async def test_a_batch_queued_behind_a_429_does_not_go_out() -> None:
    sent: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        await asyncio.sleep(0.01)  # the batch queues for the slots meanwhile
        return refusal(429, "TooManyRequests", **{"Retry-After": "30"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        client = GraphClient(BASE, static_token, http=http)
        answers = await asyncio.gather(
            client.get_json("/v1.0/me", "me.get"),
            client.get_json_batch(["/v1.0/me/messages/a/attachments"], "attachments.list"),
            return_exceptions=True,
        )

    assert sent == ["/v1.0/me"]
    assert all(isinstance(a, RateLimited) and a.retry_after == 30 for a in answers)
