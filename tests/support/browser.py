"""Render a page in a real headless Chromium and see which requests it made.

Debian's ``/usr/bin/chromium`` (``scripts/install-chromium``) is run once per page with
``--dump-dom``: it loads the page, lets its scripts run for a budget of *virtual* time (network
waits pause that clock, so a React app is fully rendered when the budget ends) and prints the
resulting DOM. Every host name except ``127.0.0.1`` resolves to nothing
(``--host-resolver-rules``), so a page that needs anything from outside fails to render here,
and a NetLog (``--log-net-log``) records every URL request that was attempted, whether or not it
got anywhere, so a test can also assert that none was even tried.

Chromium itself (not the page) still attempts a few requests of its own (update checks,
accounts) despite ``--disable-background-networking``; those also resolve to nothing, and
:meth:`RenderedPage.page_requests` leaves them out by their network isolation key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CHROMIUM",
    "ChromiumMissingError",
    "RenderedPage",
    "Request",
    "load_page",
    "render_page",
    "require_chromium",
]

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Autofill asks a Google server about every page it loads, under the page's own key.
    "--disable-features=AutofillServerCommunication",
    # Nothing outside loopback resolves: a page that needs a CDN cannot render.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ChromiumMissingError(RuntimeError):
    """``/usr/bin/chromium`` is not installed; ``scripts/install-chromium`` installs it."""


@dataclass(frozen=True)
class Request:
    """One URL request Chromium started (NetLog ``URL_REQUEST_START_JOB``)."""

    method: str
    url: str
    initiator: str
    network_isolation_key: str

    @property
    def host(self) -> str:
        """The request's host name (empty for URLs without one, e.g. ``data:``)."""
        return urlsplit(self.url).hostname or ""

    @property
    def is_loopback(self) -> bool:
        """True when the request went to this machine's loopback address."""
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")


@dataclass(frozen=True)
class RenderedPage:
    """What one headless Chromium run produced."""

    url: str
    dom: str
    requests: tuple[Request, ...]

    def page_requests(self) -> tuple[Request, ...]:
        """The requests made on behalf of the page (its frames, scripts, fetches, sockets).

        Chromium's own background requests are isolated under no site or under Google's and
        are left out; anything the page (or a frame it opened) caused carries the page's site
        as the top-frame site of its network isolation key.
        """
        parts = urlsplit(self.url)
        site = f"{parts.scheme}://{parts.hostname}"
        return tuple(
            request
            for request in self.requests
            if request.network_isolation_key.split(" ")[0] == site
            or request.initiator.startswith(site)
        )


def require_chromium() -> Path:
    """Return the Chromium binary, or raise :class:`ChromiumMissingError` saying how to get it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        raise ChromiumMissingError(
            f"{CHROMIUM} is not installed: run scripts/install-chromium (as root) first"
        )
    return CHROMIUM


def render_page(url: str, *, timeout_s: float = 30) -> str:
    """Load ``url`` in headless Chromium and return the DOM after the page's scripts ran."""
    return load_page(url, timeout_s=timeout_s).dom


def load_page(
    url: str, *, timeout_s: float = 30, virtual_time_budget_ms: int = 10_000
) -> RenderedPage:
    """Load ``url`` in a fresh headless Chromium; return its final DOM and attempted requests.

    ``virtual_time_budget_ms`` is how much page time (timers, animations) may pass after the
    network has gone idle; ``timeout_s`` bounds the whole run in wall-clock time.
    """
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp:
        profile = Path(tmp) / "profile"
        netlog = Path(tmp) / "netlog.json"
        command = [
            str(chromium),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            f"--virtual-time-budget={virtual_time_budget_ms}",
            "--dump-dom",
            url,
        ]
        dom, stderr, returncode = _run(command, timeout_s)
        if returncode != 0 or not dom.strip():
            raise RuntimeError(
                f"chromium exited {returncode} with {len(dom)} bytes of DOM for {url}; "
                f"stderr ends:\n{stderr[-3000:]}"
            )
        requests = _requests_from_netlog(netlog) if netlog.exists() else ()
        # Chromium's helper processes may still hold files in the profile for a moment.
        shutil.rmtree(profile, ignore_errors=True)
    return RenderedPage(url=url, dom=dom, requests=requests)


def _run(command: list[str], timeout_s: float) -> tuple[str, str, int]:
    """Run Chromium in its own process group; kill the whole group if it overruns."""
    with subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise TimeoutError(
                f"chromium did not finish {command[-1]} within {timeout_s} s; "
                f"stderr ends:\n{stderr[-3000:]}"
            ) from None
        return stdout, stderr, process.returncode


def _requests_from_netlog(path: Path) -> tuple[Request, ...]:
    """Every URL request a NetLog file shows as started, in order."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        log: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        # A NetLog cut short (browser killed) lacks its closing brackets; the events are whole.
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    event_types: dict[str, int] = log["constants"]["logEventTypes"]
    start_job = event_types["URL_REQUEST_START_JOB"]
    requests: list[Request] = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start_job and "url" in params:
            requests.append(
                Request(
                    method=str(params.get("method", "")),
                    url=str(params["url"]),
                    initiator=str(params.get("initiator", "")),
                    network_isolation_key=str(params.get("network_isolation_key", "")),
                )
            )
    return tuple(requests)
