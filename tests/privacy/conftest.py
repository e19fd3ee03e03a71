"""The privacy tests borrow the connect tests' emulated Google (grant revocation on termination)
and their vault key ring fixture."""

from __future__ import annotations

# Fixtures are found by name in a conftest module: importing them is how they are shared.
from tests.connect.conftest import (  # noqa: F401 (fixtures)
    connect_app,
    events,
    google,
    microsoft,
    ring,
    settings_for_connect,
)
