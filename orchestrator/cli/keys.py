"""`orchestrator keys create|list|revoke`: manage API keys from the command line.

They work on the database in `DATABASE_URL` directly, so they also work while the service
runs: a new key closes an open API within a request, a revoked key is refused at once.
`create` prints the key alone on stdout (`KEY=$(orchestrator keys create ...)`), and the
rest on stderr; the key is never shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.auth.keys import ROLES, ApiKeyRefused, any_key_ever_created, create_key, list_keys, revoke_key
from orchestrator.clock import Clock
from orchestrator.config import get_settings

T = TypeVar("T")


def in_database(operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from orchestrator.storage.database import create_engine, session_factory
    from orchestrator.storage.migrate import ensure_schema_current, upgrade_to_head

    async def run() -> T:
        settings = get_settings()
        engine = create_engine(settings.database_url)
        try:
            # As the service does at start-up: a key can be the first thing a new database holds.
            await (upgrade_to_head(engine) if settings.auto_migrate else ensure_schema_current(engine))
            async with session_factory(engine)() as session, session.begin():
                return await operation(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _create(args: argparse.Namespace) -> int:
    # Key times are real time, even when the service runs on a simulated clock.
    try:
        new = in_database(lambda session: create_key(session, args.name, args.role, Clock().now()))
    except ApiKeyRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    print(f"created API key '{new.name}' with role {new.role}; store it now, it is not shown again:", file=sys.stderr)
    print(new.key)
    return 0


def _list(args: argparse.Namespace) -> int:
    async def keys_and_history(session: AsyncSession):
        return await list_keys(session, include_revoked=args.all), await any_key_ever_created(session)

    keys, ever_created = in_database(keys_and_history)
    if not keys:
        print(
            "no active API keys: "
            + (
                "every key is revoked, so /v1 refuses every request"
                if ever_created
                else "the API is open unless ORCHESTRATOR_REQUIRE_API_KEYS=true"
            ),
            file=sys.stderr,
        )
        return 0
    print(f"{'NAME':<24} {'ROLE':<9} {'KEY':<14} {'CREATED':<20} REVOKED")
    for key in keys:
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "-"
        print(
            f"{key.name:<24} {key.role:<9} {key.key_prefix + '…':<14} {key.created_at:%Y-%m-%d %H:%M}{'':<4} {revoked}"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        in_database(lambda session: revoke_key(session, args.name, Clock().now()))
    except ApiKeyRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    print(f"revoked API key '{args.name}'", file=sys.stderr)
    return 0


def add_key_commands(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="API keys for the /v1 API: create, list, revoke")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="admin: everything; marketer: read, journeys; ops: read-only; ingest: send events only; "
        "site: send events from web pages only (analytics.js)",
    )
    create.add_argument("--name", required=True, help="who or what uses it, e.g. 'segment' or 'ann (ops)'")
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_revoke)
