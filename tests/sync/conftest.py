"""The emulators the sync tests share, one of each per test module: Gmail over HTTP, the
Microsoft emulator over https with its test CA, and Graph adapters straight over its mailboxes.
A module that needs another set-up defines its own fixture of the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from emulators.graph_testing import ServedEmulator, serve_for_tests
from tests.sync.emulated_graph import GraphFactory
from tests.sync.harness import EmulatedGmail, served_gmail


@pytest.fixture(scope="module")
def gmail() -> Iterator[EmulatedGmail]:
    with served_gmail() as served:
        yield served


@pytest.fixture(scope="module")
def microsoft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedEmulator]:
    with serve_for_tests(tmp_path_factory.mktemp("graph-tls")) as served:
        yield served


@pytest.fixture
async def graph(microsoft: ServedEmulator) -> AsyncIterator[GraphFactory]:
    async with httpx.AsyncClient(
        verify=microsoft.tls.client_context(), trust_env=False, timeout=10
    ) as http:
        yield GraphFactory(microsoft, http)
