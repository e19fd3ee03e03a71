"""The demo's run: emulators, server, owner, connected mailboxes, the token, new mail, shutdown.

One event loop in the main thread runs the server (uvicorn, without its own signal handlers)
and the demo session beside it; the emulators run in their own threads (``emulators.runner``).
SIGINT and SIGTERM set one stop event: the session (new mail) is cancelled, then the server
shuts down (open WebSockets closed, the sync worker finishes its batch, the database closed),
then the emulators stop and a temporary data directory is removed. Exit status 0 after a
signal, 1 when the set-up failed, 2 for a bad command line.

The owner token is printed once, to stdout, and is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.demo.browser import ConnectError, connect_gmail, connect_microsoft, graphql
from app.demo.mailboxes import DemoMailboxes
from app.server import create_app
from app.services.owners import create_owner
from app.settings import Settings
from vault import KeyRing, format_keyring_string, generate_key

LOOPBACK = "127.0.0.1"
SYNC_TIMEOUT_SECONDS = 120.0
OWNER = ("Demo Owner", "owner@demo.example")

FIRST_QUERY = """query FirstLook {
  accounts { address provider sync { phase lastSuccessAt } }
  messages(first: 5) {
    totalCount
    nodes { date subject from { name address } snippet hasAttachments }
  }
}"""
FIRST_SUBSCRIPTION = """subscription NewMail {
  messageEvents { kind occurredAt message { subject from { name address } } }
}"""
_SYNCED = """query Synced {
  accounts { address sync { lastSuccessAt lastErrorCode } }
  messages { totalCount }
}"""


class DemoSettings(Settings):
    """Settings from the demo's own values only: ``INBOX_API_*`` variables are not read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class DemoOptions:
    port: int
    data_dir: Path | None
    new_mail_every: float
    messages: int
    sync_interval_seconds: int
    verbose: bool


def parse_options(argv: Sequence[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="inbox-api demo",
        description="Inbox API with emulated Gmail and Microsoft 365 mailboxes, on this "
        "machine only (loopback). Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=8000, help="server port (default 8000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the database here (must be new or empty); default: a temporary folder, "
        "removed at exit",
    )
    parser.add_argument(
        "--new-mail-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a new message arrives in the Gmail mailbox this often (default 5; 0: never)",
    )
    parser.add_argument(
        "--messages", type=int, default=300, help="messages in each mailbox at start"
    )
    parser.add_argument(
        "--sync-interval",
        type=int,
        default=2,
        metavar="SECONDS",
        help="how often the sync worker polls each mailbox (default 2)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the server's log")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.sync_interval < 1 or args.new_mail_every < 0:
        parser.error("--messages and --sync-interval must be positive, --new-mail-every >= 0")
    return DemoOptions(
        port=args.port,
        data_dir=args.data_dir,
        new_mail_every=args.new_mail_every,
        messages=args.messages,
        sync_interval_seconds=args.sync_interval,
        verbose=args.verbose,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``inbox-api demo``: run until SIGINT or SIGTERM."""
    options = parse_options(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(logging.INFO if options.verbose else logging.WARNING)
    if not _port_is_free(options.port):
        print(f"inbox-api demo: port {options.port} is in use; pass --port", file=sys.stderr)
        return 2
    if options.data_dir is not None and any(options.data_dir.glob("*")):
        print(f"inbox-api demo: {options.data_dir} is not empty", file=sys.stderr)
        return 2
    return asyncio.run(run_demo(options))


async def run_demo(options: DemoOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    public_url = f"http://{LOOPBACK}:{options.port}"
    _say("Starting the Inbox API demo: emulated Gmail and Microsoft 365, loopback only ...")
    with ExitStack() as stack:
        data_dir = _data_dir(stack, options.data_dir)
        mailboxes = DemoMailboxes.start(stack, data_dir, public_url, messages=options.messages)
        settings = demo_settings(options, data_dir, public_url, mailboxes)
        server = _Server(
            uvicorn.Config(
                create_app(settings),
                host=LOOPBACK,
                port=options.port,
                log_config=None,
                log_level="info" if options.verbose else "warning",
                access_log=options.verbose,
                timeout_graceful_shutdown=5,
            )
        )
        serving = asyncio.create_task(server.serve(), name="demo-server")
        session = asyncio.create_task(
            _session(server, settings, mailboxes, options), name="demo-session"
        )
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([serving, session, stopped], return_when=asyncio.FIRST_COMPLETED)
        failed = session.done() and session.exception() is not None
        if failed:
            print(f"inbox-api demo: set-up failed: {session.exception()}", file=sys.stderr)
        _say("Stopping ...")
        for task in (session, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        server.should_exit = True
        await serving
    _say("Inbox API demo stopped.")
    return 1 if failed else 0


def demo_settings(
    options: DemoOptions, data_dir: Path, public_url: str, mailboxes: DemoMailboxes
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "host": LOOPBACK,
        "port": options.port,
        "public_url": public_url,
        "log_level": "info" if options.verbose else "warning",
        "embedded_worker": True,
        "sync_interval_seconds": options.sync_interval_seconds,
        **mailboxes.settings(),
    }
    if options.data_dir is None:
        # The database goes away at exit, and so may its key: no key file to warn about.
        values["vault_keys"] = format_keyring_string(KeyRing([generate_key("demo")]))
    return DemoSettings(**values)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the demo stops everything in its own order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _session(
    server: uvicorn.Server, settings: Settings, mailboxes: DemoMailboxes, options: DemoOptions
) -> None:
    """Set the demo up on the running server, print the token once, then deliver new mail."""
    while not server.started:  # noqa: ASYNC110 (uvicorn has a flag for this, no event)
        await asyncio.sleep(0.02)
    _, issued = await create_owner(*OWNER)
    token = issued.raw
    async with (
        httpx.AsyncClient(base_url=settings.public_url, trust_env=False, timeout=30) as api,
        httpx.AsyncClient(verify=mailboxes.tls.client_context(), trust_env=False) as browser,
    ):
        _say("Connecting the mailboxes through the real OAuth flows ...")
        await connect_gmail(api, browser, token, mailboxes.gmail_user.address)
        await connect_microsoft(api, browser, token, mailboxes.microsoft_user.address)
        _say("Syncing both mailboxes ...")
        cached = await _wait_for_sync(api, token)
    _banner(settings, mailboxes, token, cached, options)
    if options.new_mail_every <= 0:
        await asyncio.Event().wait()
    while True:
        await asyncio.sleep(options.new_mail_every)
        subject = mailboxes.deliver_new_mail()
        _say(f"  new mail for {mailboxes.gmail_user.address}: {subject}")


async def _wait_for_sync(api: httpx.AsyncClient, token: str) -> int:
    """Wait until every account finished a sync; how many messages the cache holds then."""
    deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
    while True:
        data = await graphql(api, token, _SYNCED)
        accounts = data["accounts"]
        if accounts and all(a["sync"]["lastSuccessAt"] for a in accounts):
            total: int = data["messages"]["totalCount"]
            return total
        if time.monotonic() > deadline:
            errors = {a["address"]: a["sync"]["lastErrorCode"] for a in accounts}
            raise ConnectError(f"the first sync did not finish in time: {errors}")
        await asyncio.sleep(0.25)


def _banner(
    settings: Settings, mailboxes: DemoMailboxes, token: str, cached: int, options: DemoOptions
) -> None:
    users = (mailboxes.gmail_user, mailboxes.microsoft_user)
    arrival = f"every {options.new_mail_every:g} s" if options.new_mail_every > 0 else "never"
    lines = [
        "",
        "Inbox API demo is ready. Everything runs on this machine; Ctrl-C stops it.",
        "",
        f"  GraphiQL:     {settings.public_url}/graphql",
        f"  Owner token:  {token}",
        "                (shown this once: it reads and manages everything of the demo owner)",
        f"  Mailboxes:    {', '.join(f'{u.address} ({u.provider})' for u in users)}",
        f"  Cached:       {cached} messages",
        "",
        "Open GraphiQL, put the owner token in the Headers pane",
        '({"Authorization": "Bearer <paste your token>"}) and run:',
        "",
        _indent(FIRST_QUERY),
        "",
        f"New mail lands in the Gmail mailbox {arrival}; this subscription (in a second tab)",
        f"receives it within about {settings.sync_interval_seconds + 1} s of its arrival:",
        "",
        _indent(FIRST_SUBSCRIPTION),
        "",
        "From a shell, with TOKEN set to the owner token:",
        "",
        f'  curl -s {settings.public_url}/graphql -H "Authorization: Bearer $TOKEN" \\',
        "    -H 'content-type: application/json' \\",
        '    -d \'{"query": "{ messages(first: 3) { nodes { subject } } }"}\'',
        "",
    ]
    print("\n".join(lines), flush=True)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _say(line: str) -> None:
    print(line, flush=True)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _data_dir(stack: ExitStack, chosen: Path | None) -> Path:
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        return chosen.resolve()
    path = Path(tempfile.mkdtemp(prefix="inbox-api-demo-"))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path
