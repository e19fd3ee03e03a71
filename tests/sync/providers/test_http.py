"""sync.providers.http: refresh-on-401 auth, Retry-After, status and transport error mapping,
and which error wins when concurrent calls fail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from sync.providers.errors import (
    AuthExpired,
    AuthRevoked,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)
from sync.providers.http import (
    BearerAuth,
    error_for_status,
    finish_in_flight,
    gather_concurrently,
    json_object,
    parse_retry_after,
    transport_errors,
)


class Tokens:
    """Token source whose tokens are numbered: ``t0``, then ``t1`` after one refresh, ..."""

    def __init__(self, *, revoked: bool = False) -> None:
        self.current = 0
        self.refreshes = 0
        self.revoked = revoked

    async def __call__(self, force_refresh: bool) -> str:
        if force_refresh:
            await asyncio.sleep(0.01)  # a real refresh takes a round trip: let others pile up
            if self.revoked:
                raise AuthRevoked("invalid_grant")
            self.refreshes += 1
            self.current += 1
        return f"t{self.current}"


def server(valid: set[str], seen: list[tuple[str, bytes]]) -> httpx.MockTransport:
    async def handle(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append((token, await request.aread()))
        return httpx.Response(200 if token in valid else 401, json={})

    return httpx.MockTransport(handle)


async def test_a_401_refreshes_once_and_retries_with_the_body() -> None:
    tokens, seen = Tokens(), list[tuple[str, bytes]]()
    async with httpx.AsyncClient(transport=server({"t1"}, seen)) as client:
        response = await client.post("http://api/x", content=b"payload", auth=BearerAuth(tokens))
    assert response.status_code == 200
    assert seen == [("t0", b"payload"), ("t1", b"payload")]
    assert tokens.refreshes == 1


async def test_concurrent_401s_share_one_refresh() -> None:
    tokens, seen = Tokens(), list[tuple[str, bytes]]()
    auth = BearerAuth(tokens)
    async with httpx.AsyncClient(transport=server({"t1"}, seen)) as client:
        responses = await asyncio.gather(*(client.get("http://api/x", auth=auth) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert tokens.refreshes == 1
    assert auth.refreshes == 1
    # A later expiry is a new event: the next 401 refreshes again.
    async with httpx.AsyncClient(transport=server({"t2"}, seen)) as client:
        assert (await client.get("http://api/x", auth=auth)).status_code == 200
    assert tokens.refreshes == 2


async def test_a_second_401_is_handed_back_and_revocation_propagates() -> None:
    tokens, seen = Tokens(), list[tuple[str, bytes]]()
    async with httpx.AsyncClient(transport=server(set(), seen)) as client:
        response = await client.get("http://api/x", auth=BearerAuth(tokens))
        assert response.status_code == 401
        assert isinstance(error_for_status(response, "x.get"), AuthExpired)
        assert tokens.refreshes == 1
        with pytest.raises(AuthRevoked):
            await client.get("http://api/x", auth=BearerAuth(Tokens(revoked=True)))


async def test_after_rejection_refreshes_only_for_the_first_to_report() -> None:
    tokens = Tokens()
    auth = BearerAuth(tokens)
    seen = auth.refreshes
    first, second = await asyncio.gather(auth.after_rejection(seen), auth.after_rejection(seen))
    assert first == second == "t1"
    assert tokens.refreshes == 1


def test_bearer_auth_is_async_only() -> None:
    with (
        httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client,
        pytest.raises(RuntimeError),
    ):
        client.get("http://api/x", auth=BearerAuth(Tokens()))


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 01 Jan 2025 12:00:30 GMT", 30.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),
        ("nan", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthExpired),
        (429, RateLimited),
        (408, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (400, PermanentError),
        (403, PermanentError),
        (404, PermanentError),
    ],
)
def test_error_for_status(status: int, kind: type[Exception]) -> None:
    response = httpx.Response(status, headers={"Retry-After": "9"}, text="secret body")
    error = error_for_status(response, "thing.get")
    assert type(error) is kind
    assert "secret body" not in str(error)
    assert "thing.get" in str(error)
    if isinstance(error, RateLimited):
        assert error.retry_after == 9
    if type(error) is PermanentError:
        assert error.code == f"HTTP_{status}"


def test_a_provider_specific_rate_limit_status() -> None:
    error = error_for_status(httpx.Response(403), "x", rate_limited=True)
    assert isinstance(error, RateLimited)
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ReadTimeout("slow"), TransientError),
        (httpx.RemoteProtocolError("reset"), TransientError),
        (httpx.UnsupportedProtocol("ftp"), PermanentError),
    ],
)
def test_transport_errors(raised: Exception, kind: type[Exception]) -> None:
    with pytest.raises(kind) as caught, transport_errors("x.get"):
        raise raised
    assert caught.value.__cause__ is raised


def test_json_object() -> None:
    assert json_object(httpx.Response(200, json={"a": 1}), "x") == {"a": 1}
    for bad in (httpx.Response(200, text="<html>"), httpx.Response(200, json=[1])):
        with pytest.raises(TransientError):
            json_object(bad, "x")


# -- gather_concurrently ------------------------------------------------------------------------


async def fail(error: Exception, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    raise error


async def succeed(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_gathered_results_keep_their_order() -> None:
    assert await gather_concurrently([succeed(3), succeed(1), succeed(2)]) == [3, 1, 2]
    assert await gather_concurrently(succeed(n) for n in (5, 4)) == [5, 4]  # any iterable
    assert await gather_concurrently([]) == []


class DeltaGone(ProviderError):
    """An adapter's own error, ranked below every shared one."""


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([TransientError("a"), RateLimited("b", retry_after=1)], RateLimited),
        ([RateLimited("a", retry_after=1), AuthRevoked("b")], AuthRevoked),
        ([AuthExpired("a"), PermanentError("b")], AuthExpired),
        ([DeltaGone("a"), TransientError("b")], TransientError),
    ],
)
async def test_the_gravest_error_wins(
    errors: list[ProviderError], expected: type[ProviderError]
) -> None:
    # Failing at the same moment: the task group collects both before it raises.
    with pytest.raises(expected):
        await gather_concurrently([fail(error) for error in errors])


async def test_a_single_error_is_raised_as_itself() -> None:
    with pytest.raises(DeltaGone):
        await gather_concurrently([succeed(1), fail(DeltaGone("gone"))])


async def test_the_longest_wait_wins_among_rate_limits() -> None:
    errors = [RateLimited("a", retry_after=2), RateLimited("b", retry_after=30), RateLimited("c")]
    with pytest.raises(RateLimited) as limited:
        await gather_concurrently([fail(error) for error in errors])
    assert limited.value.retry_after == 30


async def test_the_others_are_cancelled_on_failure() -> None:
    finished = []

    async def slow() -> int:
        await asyncio.sleep(5)
        finished.append(True)
        return 1

    with pytest.raises(TransientError):
        await gather_concurrently([slow(), fail(TransientError("x"))])
    assert finished == []


async def test_bugs_are_not_disguised_as_provider_errors() -> None:
    with pytest.raises(ExceptionGroup):
        await gather_concurrently([fail(KeyError("bug")), fail(TransientError("x"))])


# -- finish_in_flight ---------------------------------------------------------------------------


async def test_a_request_in_flight_ends_before_its_cancelled_caller_does() -> None:
    ended = []

    async def request() -> int:
        await asyncio.sleep(0.05)
        ended.append(True)
        return 1

    caller = asyncio.ensure_future(finish_in_flight(request))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == [True]
    assert await finish_in_flight(request) == 1


async def test_a_caller_cancelled_before_its_request_left_never_sends_it() -> None:
    started = []

    async def request() -> int:
        started.append(True)
        return 1

    caller = asyncio.ensure_future(finish_in_flight(request))
    await asyncio.sleep(0)  # the caller runs up to its first turn of the loop
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert started == []
