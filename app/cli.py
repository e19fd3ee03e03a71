"""The ``inbox-api`` command: serve, migrate, owners, tokens, schema. Wiring only.

Every command reads its settings from ``INBOX_API_*`` environment variables (see README);
options given here override them. Raw tokens are printed once, to stdout, and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
    )
    return 0


def _export_overrides(args: argparse.Namespace) -> None:
    for name in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"{ENV_PREFIX}{name.upper()}"] = str(value)


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
