"""`orchestrator customers import|export|erase`: the central customer database from the
command line (docs/customers.md). They work on the database in `DATABASE_URL` directly, so
they also work while the service runs.

`import` shows its progress on stderr: a bar redrawn in place when stderr is a terminal,
otherwise a line every `PROGRESS_EVERY` lines (a log stays readable). The summary goes to
stderr too; `--rejects PATH` writes every rejected line as CSV (line, column, reason).
`export` prints the JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from orchestrator.clock import Clock
from orchestrator.config import Settings, get_settings

T = TypeVar("T")
PROGRESS_EVERY = 100_000


def _with_database(operation: Callable[[object, Settings], Awaitable[T]]) -> T:
    """Run `operation(sessions, settings)` with the service's secrets filled in."""
    from orchestrator.auth.service_secrets import with_service_secrets
    from orchestrator.storage.database import create_engine, session_factory
    from orchestrator.storage.migrate import ensure_schema_current, upgrade_to_head

    async def run() -> T:
        settings = get_settings()
        engine = create_engine(settings.database_url)
        try:
            await (upgrade_to_head(engine) if settings.auto_migrate else ensure_schema_current(engine))
            sessions = session_factory(engine)
            return await operation(sessions, await with_service_secrets(settings, sessions))
        finally:
            await engine.dispose()

    return asyncio.run(run())


class Progress:
    """Lines read, as a bar on a terminal (the file's bytes read so far) or periodic lines."""

    def __init__(self, stream, total_bytes: int, out=sys.stderr) -> None:
        self.stream, self.total, self.out = stream, max(total_bytes, 1), out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.next_line = PROGRESS_EVERY

    def __call__(self, report) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = report.lines / elapsed
        if self.tty:
            done = min(self.stream.tell() / self.total, 1.0)
            bar = "#" * int(done * 30)
            self.out.write(
                f"\r[{bar:<30}] {done:6.1%} {report.lines:,} lines, {rate:,.0f}/s, {report.reject_count:,} rejects"
            )
            self.out.flush()
        elif report.lines >= self.next_line:
            self.next_line = (report.lines // PROGRESS_EVERY + 1) * PROGRESS_EVERY
            print(f"{report.lines:,} lines, {rate:,.0f}/s, {report.reject_count:,} rejects", file=self.out, flush=True)

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")


def _import(args: argparse.Namespace) -> int:
    from orchestrator.customers.import_files import ImportFileError, format_of
    from orchestrator.customers.imports import ImportSource, import_customers

    path = Path(args.file)
    try:
        fmt = format_of(path.name, args.format)
    except ImportFileError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as files:
        rejects_csv = None
        if args.rejects:
            rejects_csv = csv.writer(files.enter_context(open(args.rejects, "w", newline="", encoding="utf-8")))
            rejects_csv.writerow(["line", "column", "reason"])

        async def run(sessions, settings: Settings):
            with open(path, "rb") as stream:
                progress = Progress(stream, os.fstat(stream.fileno()).st_size)
                source = ImportSource(file=path.name, imported_at=Clock().now(), dry_run=args.dry_run)
                try:
                    return await import_customers(
                        sessions,
                        stream,
                        fmt,
                        source,
                        on_reject=(lambda r: rejects_csv.writerow([r.line, r.column or "", r.reason]))
                        if rejects_csv
                        else None,
                        on_progress=progress,
                    )
                finally:
                    progress.finish()

        try:
            report = _with_database(run)
        except ImportFileError as problem:
            print(f"error: {path.name}: {problem}", file=sys.stderr)
            return 2
    verb = "would be created" if report.dry_run else "created"
    print(
        f"{path.name}: {report.lines:,} lines: {report.created:,} customers {verb}, "
        f"{report.updated:,} updated, {report.unchanged:,} unchanged, {report.rejected_lines:,} lines rejected; "
        f"{report.consents_recorded:,} consent records; {report.reject_count:,} rejects"
        + (" (dry run: nothing written)" if report.dry_run else ""),
        file=sys.stderr,
    )
    for reject in report.rejects[:10]:
        print(f"  line {reject.line}, {reject.column or '(line)'}: {reject.reason}", file=sys.stderr)
    if report.reject_count > 10:
        where = f"all of them in {args.rejects}" if args.rejects else "--rejects PATH writes them all"
        print(f"  … {report.reject_count - 10:,} more; {where}", file=sys.stderr)
    return 1 if report.reject_count else 0


def _export(args: argparse.Namespace) -> int:
    from orchestrator.customers.records import customer_rows, export_document, find_customer

    async def run(sessions, settings):
        async with sessions() as session:
            customer = await find_customer(session, args.user_id)
            return customer and export_document(await customer_rows(session, customer), Clock().now())

    document = _with_database(run)
    if document is None:
        print(f"error: no customer with userId '{args.user_id}'", file=sys.stderr)
        return 1
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _erase(args: argparse.Namespace) -> int:
    from orchestrator.customers.erasure import erase_customer
    from orchestrator.customers.records import find_customer

    async def run(sessions, settings):
        async with sessions() as session, session.begin():
            customer = await find_customer(session, args.user_id, lock=True)
            return customer and await erase_customer(session, customer, settings.erasure_key, Clock().now())

    erasure = _with_database(run)
    if erasure is None:
        print(f"error: no customer with userId '{args.user_id}'", file=sys.stderr)
        return 1
    print(
        f"erased '{erasure.user_id}': {erasure.rows_changed} rows cleared, "
        f"{erasure.tombstones} addresses kept only as hashes so they are never messaged again",
        file=sys.stderr,
    )
    return 0


def add_customer_commands(commands: argparse._SubParsersAction) -> None:
    customers = commands.add_parser("customers", help="the customer database: import a file, export or erase a person")
    actions = customers.add_subparsers(dest="customers_command", required=True)

    importing = actions.add_parser("import", help="create or update customers from a CSV or JSON Lines file")
    importing.add_argument("file")
    importing.add_argument("--format", choices=("csv", "jsonl"), default=None, help="default: from the file name")
    importing.add_argument("--dry-run", action="store_true", help="check and count; write nothing")
    importing.add_argument("--rejects", metavar="PATH", default=None, help="write every rejected line here (CSV)")
    importing.set_defaults(handler=_import)

    export = actions.add_parser("export", help="print everything held about one customer, as JSON")
    export.add_argument("user_id")
    export.set_defaults(handler=_export)

    erase = actions.add_parser("erase", help="erase one customer's personal data and never message them again")
    erase.add_argument("user_id")
    erase.set_defaults(handler=_erase)
