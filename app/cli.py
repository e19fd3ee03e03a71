"""The ``inbox-api`` command: serve, worker, migrate, owners, tokens, vault, purge, schema.

Wiring only. Every command reads its settings from ``INBOX_API_*`` environment variables (see
README); options given here override them. Raw tokens are printed once, to stdout, and nowhere
else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import runpy
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.db import close_database, migrate, open_database
from app.settings import ENV_PREFIX, Settings
from app.types import Action, OwnerId

Handler = Callable[[argparse.Namespace, Settings], int]


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)  # type: ignore[arg-type]


def _run(coroutine: Awaitable[int]) -> int:
    async def wrapper() -> int:
        return await coroutine

    return asyncio.run(wrapper())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    # The server reads its settings from the environment (an import string lets uvicorn run
    # several workers); command-line overrides travel the same way.
    _export_overrides(args)
    uvicorn.run(
        "app.server:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        ws_per_message_deflate=settings.websocket_compression,
    )
    return 0


def _export_overrides(args: argparse.Namespace) -> None:
    for name in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"{ENV_PREFIX}{name.upper()}"] = str(value)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    # app.worker is a sibling entry point (DESIGN.md layers): run it as a module, the way
    # `serve` hands uvicorn an import string, with command-line overrides in the environment.
    _export_overrides(args)
    runpy.run_module("app.worker", run_name="__main__", alter_sys=True)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    # app.demo is a sibling entry point too; its own parser reads the options after `demo`
    # (`inbox-api demo --help`), and it reads no INBOX_API_* variable.
    data_dir = [] if args.data_dir is None else ["--data-dir", str(args.data_dir)]
    sys.argv = ["inbox-api demo", *data_dir, *args.demo_options]
    runpy.run_module("app.demo", run_name="__main__", alter_sys=True)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(migrate(settings))
    print("database is up to date")
    return 0


def cmd_owners_create(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.owners import create_owner

    async def go() -> int:
        await open_database(settings, apply_migrations=not settings.is_postgres)
        try:
            owner, issued = await create_owner(args.name, args.email)
        finally:
            await close_database()
        print(f"owner {owner.id} created")
        print(f"owner token (shown once): {issued.raw}")
        return 0

    return _run(go())


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.tokens import issue_token

    expires = None
    if args.expires_at:
        expires = datetime.fromisoformat(args.expires_at)
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)

    async def go() -> int:
        await open_database(settings, apply_migrations=not settings.is_postgres)
        try:
            issued = await issue_token(
                OwnerId(args.owner),
                name=args.name,
                actions=[Action(s) for s in args.scope],
                account_ids=args.account or None,
                expires_at=expires,
            )
        finally:
            await close_database()
        print(f"token {issued.token.id} created ({issued.token.display_prefix}...)")
        print(f"token (shown once): {issued.raw}")
        return 0

    return _run(go())


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from resolvers.schema import build_schema

    text = build_schema(settings).as_str() + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.purge import SECTIONS, purge

    async def go() -> int:
        await open_database(settings, apply_migrations=not settings.is_postgres)
        try:
            report = await purge(settings, dry_run=args.dry_run)
        finally:
            await close_database()
        print("dry run: nothing deleted; would delete" if report.dry_run else "deleted")
        for name, counts in report.sections.items():
            print(f"  {SECTIONS[name]}: {sum(counts.values())}")
            for table, count in sorted(counts.items()):
                print(f"    {table:<20} {count:>10}")
        return 0

    return _run(go())


def _vault_command(work: Callable[[], Awaitable[None]], settings: Settings) -> int:
    """Run a vault command with the database open; its expected failures end in one line."""
    from app.services.errors import ServiceError
    from app.services.vault_keys import VaultSetupError
    from vault import VaultError

    async def go() -> int:
        await open_database(settings, apply_migrations=not settings.is_postgres)
        try:
            await work()
        except (VaultError, VaultSetupError, ServiceError) as error:
            print(f"inbox-api vault: {error}", file=sys.stderr)
            return 1
        finally:
            await close_database()
        return 0

    return _run(go())


def _key_source(settings: Settings) -> str:
    from app.services.vault_keys import keys_from_environment

    if keys_from_environment(settings):
        return f"{ENV_PREFIX}VAULT_KEYS"
    return str(settings.effective_vault_key_file)


def cmd_vault_init(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.vault_keys import VaultSetupError, create_keyring_file
    from vault import VaultError

    try:
        ring = create_keyring_file(settings)
    except (VaultError, VaultSetupError) as error:
        print(f"inbox-api vault: {error}", file=sys.stderr)
        return 1
    print(f"created vault key file {settings.effective_vault_key_file} (key {ring.primary_id})")
    print("back it up, and give every process that shares the database the same file")
    return 0


def cmd_vault_status(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.rotation import credential_counts_by_key
    from app.services.vault_keys import read_keyring

    async def work() -> None:
        ring = read_keyring(settings)
        counts = await credential_counts_by_key()
        print(f"key ring: {_key_source(settings)}")
        for key_id in ring.key_ids:
            role = " (primary)" if key_id == ring.primary_id else ""
            print(f"  {key_id}{role}: {counts.pop(key_id, 0)} credentials")
        for key_id, count in counts.items():
            print(f"  {key_id} (NOT IN THE RING): {count} credentials cannot be opened")

    return _vault_command(work, settings)


def cmd_vault_add_key(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.credentials import verify_keyring
    from app.services.vault_keys import add_key_to_file, read_keyring

    async def work() -> None:
        await verify_keyring(read_keyring(settings))
        ring = add_key_to_file(settings, key_id=args.key_id)
        key_id = ring.key_ids[-1]
        print(f"added key {key_id} to {settings.effective_vault_key_file} (not primary)")
        print(f"once every process has the file: inbox-api vault rotate --promote {key_id}")

    return _vault_command(work, settings)


def cmd_vault_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.rotation import RotationReport, rotate

    def progress(report: RotationReport) -> None:
        print(f"rewrapped {report.done}/{report.total}", flush=True)

    async def work() -> None:
        report = await rotate(
            settings,
            new_key=args.new_key,
            promote=args.promote,
            batch_size=args.batch_size,
            progress=progress,
        )
        if report.total == 0:
            progress(report)
        print(f"{report.rewrapped} credentials re-wrapped to key {report.primary_id}")
        if report.changed_meanwhile:
            print(f"{report.changed_meanwhile} were rewritten meanwhile; run again to check them")
        for failed in report.unreadable:
            print(
                f"UNREADABLE: credential {failed.credential_id} ({failed.kind.value}) of account "
                f"{failed.account_id}, key {failed.key_id}: {failed.failure}; account marked "
                "needs_attention"
            )

    return _vault_command(work, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inbox-api", description="Inbox API: one GraphQL API over your users' mailboxes."
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (INBOX_API_DATA_DIR)")
    parser.add_argument("--database-url", help="database URL (INBOX_API_DATABASE_URL)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--host", help="bind address (INBOX_API_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (INBOX_API_PORT, default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser(
        "worker", help="run a sync worker (PostgreSQL; SQLite's `serve` runs one itself)"
    ).set_defaults(handler=cmd_worker)

    demo = commands.add_parser(
        "demo",
        help="try it: emulated Gmail and Microsoft 365 mailboxes, on this machine only",
        add_help=False,
        prefix_chars="+",  # every option goes to the demo's own parser
    )
    demo.add_argument("demo_options", nargs="*", help=argparse.SUPPRESS)
    demo.set_defaults(handler=cmd_demo)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        handler=cmd_migrate
    )

    owners = commands.add_parser("owners", help="manage owners").add_subparsers(
        dest="owners_command", required=True, metavar="COMMAND"
    )
    create_owner = owners.add_parser("create", help="create an owner and print its token once")
    create_owner.add_argument("--name", required=True)
    create_owner.add_argument("--email", required=True)
    create_owner.set_defaults(handler=cmd_owners_create)

    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="COMMAND"
    )
    create_token = tokens.add_parser("create", help="issue a token and print it once")
    create_token.add_argument("--owner", type=int, required=True, help="owner id")
    create_token.add_argument("--name", required=True)
    create_token.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[a.value for a in Action],
        help="repeat for each action",
    )
    create_token.add_argument(
        "--account", type=int, action="append", help="account id (repeat); default: all"
    )
    create_token.add_argument("--expires-at", help="ISO 8601 time (UTC if no offset)")
    create_token.set_defaults(handler=cmd_tokens_create)

    vault = commands.add_parser("vault", help="manage the vault key ring").add_subparsers(
        dest="vault_command", required=True, metavar="COMMAND"
    )
    vault.add_parser("init", help="create the key file (for PostgreSQL set-ups)").set_defaults(
        handler=cmd_vault_init
    )
    vault.add_parser("status", help="key ids and how many credentials each wraps").set_defaults(
        handler=cmd_vault_status
    )
    add_key = vault.add_parser("add-key", help="add a key to the key file, not yet primary")
    add_key.add_argument("--key-id", help="id of the new key (default: random)")
    add_key.set_defaults(handler=cmd_vault_add_key)
    rotate = vault.add_parser(
        "rotate", help="re-wrap every credential to the primary key (resumable)"
    )
    new_primary = rotate.add_mutually_exclusive_group()
    new_primary.add_argument("--new-key", action="store_true", help="add a new primary key first")
    new_primary.add_argument("--promote", metavar="KEY_ID", help="make this key primary first")
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction")
    rotate.set_defaults(handler=cmd_vault_rotate)

    purge = commands.add_parser(
        "purge", help="delete what is past its retention (the worker also does it hourly)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count per table, delete nothing")
    purge.set_defaults(handler=cmd_purge)

    schema = commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    schema.add_argument("--output", help="write to this file instead of stdout")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
