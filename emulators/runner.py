"""Run an ASGI application on a free loopback port in a background thread.

Tests, benchmarks and the demo start emulators with this; a real HTTP server (uvicorn) stands
between our adapters and the emulator, exactly as the network stands between us and Google.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    """Where a started server answers."""

    base_url: str
    host: str
    port: int


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Serve ``app`` with uvicorn on ``host:port`` until the block ends.

    With ``ssl_certfile``/``ssl_keyfile`` the server speaks https (MSAL accepts nothing else).
    """
    chosen_port = port or free_port(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=chosen_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on {host}:{chosen_port} did not start")
        time.sleep(0.01)
    scheme = "https" if ssl_certfile else "http"
    try:
        yield RunningServer(f"{scheme}://{host}:{chosen_port}", host, chosen_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
