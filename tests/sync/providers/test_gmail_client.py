"""sync.providers.gmail_client: which error wins when concurrent calls fail."""

from __future__ import annotations

import asyncio

import pytest

from sync.providers.errors import AuthRevoked, ProviderError, RateLimited, TransientError
from sync.providers.gmail_client import gather_first_error


async def fail(error: Exception, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    raise error


async def succeed(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_results_keep_their_order() -> None:
    assert await gather_first_error([succeed(3), succeed(1), succeed(2)]) == [3, 1, 2]
    assert await gather_first_error([]) == []


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([TransientError("a"), RateLimited("b", retry_after=1)], RateLimited),
        ([RateLimited("a", retry_after=1), AuthRevoked("b")], AuthRevoked),
    ],
)
async def test_the_gravest_error_wins(
    errors: list[ProviderError], expected: type[ProviderError]
) -> None:
    # Failing at the same moment: the task group collects both before it raises.
    with pytest.raises(expected):
        await gather_first_error([fail(error) for error in errors])


async def test_the_longest_wait_wins_among_rate_limits() -> None:
    errors = [RateLimited("a", retry_after=2), RateLimited("b", retry_after=30), RateLimited("c")]
    with pytest.raises(RateLimited) as limited:
        await gather_first_error([fail(error) for error in errors])
    assert limited.value.retry_after == 30


async def test_the_others_are_cancelled_on_failure() -> None:
    finished = []

    async def slow() -> int:
        await asyncio.sleep(5)
        finished.append(True)
        return 1

    with pytest.raises(TransientError):
        await gather_first_error([slow(), fail(TransientError("x"))])
    assert finished == []


async def test_bugs_are_not_disguised_as_provider_errors() -> None:
    with pytest.raises(ExceptionGroup):
        await gather_first_error([fail(KeyError("bug")), fail(TransientError("x"))])
