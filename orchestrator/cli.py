"""`orchestrator` command line: run the service, and tools around it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from orchestrator.config import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from orchestrator.api.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = get_settings().model_copy(update=overrides) if overrides else get_settings()
    if overrides and not os.environ.get("ORCHESTRATOR_PUBLIC_BASE_URL"):
        settings.public_base_url = f"http://{settings.host}:{settings.port}"
    app = create_app(settings, run_worker=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def _worker(args: argparse.Namespace) -> int:
    """A worker process without the API: for many workers against one PostgreSQL."""
    import asyncio
    import signal

    from orchestrator.engine.loop import WorkerLoop
    from orchestrator.runtime import build_runtime

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


def _schema(args: argparse.Namespace) -> int:
    from orchestrator.journeys.format import JourneyFile

    schema = JourneyFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator journey"
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and the worker in one process (embedded default)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run only the worker loop (journeys and dispatch)")
    worker.set_defaults(handler=_worker)

    schema = commands.add_parser("schema", help="print the JSON Schema of journey files")
    schema.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    schema.set_defaults(handler=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per tick is noise
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
