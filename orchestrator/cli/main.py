"""`orchestrator` command line: run the service, and tools around it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from orchestrator.cli.broadcasts import add_broadcast_commands
from orchestrator.cli.customers import add_customer_commands
from orchestrator.cli.keys import add_key_commands
from orchestrator.cli.segments import add_segment_commands
from orchestrator.config import get_settings
from orchestrator.tooling.commands import add_tooling_commands
from orchestrator.tooling.schema import KINDS


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from orchestrator.api.app import create_app
    from orchestrator.api.serving import run_uvicorn

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = get_settings().model_copy(update=overrides) if overrides else get_settings()
    if overrides and not os.environ.get("ORCHESTRATOR_PUBLIC_BASE_URL"):
        settings.public_base_url = f"http://{settings.host}:{settings.port}"
    app = create_app(settings, run_worker=True)
    run_uvicorn(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info"))
    return 0


def _worker(args: argparse.Namespace) -> int:
    """A worker process without the API: for many workers against one PostgreSQL."""
    import asyncio
    import signal

    from orchestrator.engine.loop import WorkerLoop
    from orchestrator.startup import build_runtime

    async def run() -> None:
        runtime = await build_runtime(get_settings())
        loop = WorkerLoop(runtime)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        loop.start()
        logging.getLogger("orchestrator").info("worker started")
        await stop.wait()
        await loop.stop()
        await runtime.aclose()

    asyncio.run(run())
    return 0


def _api(args: argparse.Namespace) -> int:
    """The API without the worker loop: run any number behind a load balancer (all state is in the database)."""
    import uvicorn

    from orchestrator.api.serving import run_uvicorn

    # Each uvicorn worker process builds its own app from the environment: pass the address that way.
    for name, value in (("ORCHESTRATOR_HOST", args.host), ("ORCHESTRATOR_PORT", args.port)):
        if value is not None:
            os.environ[name] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    run_uvicorn(
        uvicorn.Config(
            "orchestrator.api.app:create_api_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level="info",
            access_log=not args.no_access_log,
        )
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Upgrade the database to the newest schema; safe to run while other processes do the same."""
    import asyncio

    from orchestrator.storage.database import create_engine
    from orchestrator.storage.migrate import head_revisions, upgrade_to_head

    async def run() -> None:
        engine = create_engine(get_settings().database_url)
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()
        print(f"{engine.url.render_as_string(hide_password=True)}: schema at {', '.join(sorted(head_revisions()))}")

    asyncio.run(run())
    return 0


def _makemigration(args: argparse.Namespace) -> int:
    """Write the next migration from the difference between the models and the existing migrations."""
    import asyncio

    from orchestrator.storage.drift import make_migration

    path = asyncio.run(make_migration(args.message, database_url=args.database_url))
    if path is None:
        print("no changes: the migrations already match the models")
    else:
        print(f"wrote {path}: review it, then commit it with the model change")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from orchestrator.tooling.schema import schema_is_current, schema_text

    if args.check:
        if schema_is_current(Path(args.check), args.kind):
            return 0
        print(
            f"{args.check} is not the current schema: run `orchestrator schema --kind {args.kind} -o {args.check}`",
            file=sys.stderr,
        )
        return 1
    text = schema_text(args.kind)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.cli.demo import run_demo

    run_demo(
        customers=args.customers, seed=args.seed, database_url=args.database_url, port=args.port, verbose=args.verbose
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and the worker in one process (embedded default)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser("demo", help="play the launch journeys for synthetic customers and print the KPIs")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    demo.add_argument("--port", type=int, default=None, help="where the demo's service listens (default: a free port)")
    demo.add_argument("--verbose", action="store_true", help="show the service's and the clients' logs")
    demo.set_defaults(handler=_demo)

    worker = commands.add_parser("worker", help="run only the worker loop (journeys and dispatch)")
    worker.set_defaults(handler=_worker)

    api = commands.add_parser(
        "api", help="run only the API (no worker loop); any number of them may share one database"
    )
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    api.add_argument("--no-access-log", action="store_true", help="no log line per request (a proxy usually logs them)")
    api.set_defaults(handler=_api)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the newest migration")
    migrate.set_defaults(handler=_migrate)

    makemigration = commands.add_parser("makemigration", help="write the next migration after changing the models")
    makemigration.add_argument("message", help='what changed, e.g. "add customers.nickname"')
    makemigration.add_argument(
        "--database-url", default=None, help="compare against this database (at head) instead of a scratch SQLite"
    )
    makemigration.set_defaults(handler=_makemigration)

    schema = commands.add_parser("schema", help="print the JSON Schema of journey (segment, scenario) files")
    schema.add_argument("--kind", choices=KINDS, default="journey", help="which files' schema (default: journey)")
    schema.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    schema.add_argument("--check", metavar="FILE", default=None, help="exit 1 if FILE is not the current schema")
    schema.set_defaults(handler=_schema)

    add_tooling_commands(commands)
    add_key_commands(commands)
    add_broadcast_commands(commands)
    add_customer_commands(commands)
    add_segment_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per tick, per skipped tick and per Twilio request is noise, not information.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("twilio").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
