"""The Microsoft emulator the Graph emulator tests share, one per test module.

``served``: the emulator over https with a fresh test CA, on the module's ``clock`` (a
``ManualClock`` the module advances) when the module defines one; ``mailbox``: a fresh mailbox
per test; ``graph``: an https client holding that mailbox's token. A module that needs other
options defines its own fixture of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.graph_testing import EmulatedMailbox, ServedEmulator, serve_for_tests


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedEmulator]:
    options: dict[str, Any] = {}
    if hasattr(request.module, "clock"):
        options["clock"] = request.module.clock
    with serve_for_tests(tmp_path_factory.mktemp("graph-tls"), **options) as served:
        yield served


@pytest.fixture
def mailbox(served: ServedEmulator) -> EmulatedMailbox:
    return served.new_mailbox()


@pytest.fixture
def graph(served: ServedEmulator, mailbox: EmulatedMailbox) -> Iterator[httpx.Client]:
    with served.graph_client(mailbox.token) as client:
        yield client
