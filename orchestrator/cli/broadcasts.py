"""`orchestrator broadcasts list|preview|schedule|pause|resume|cancel|schema`.

They work on the database in `DATABASE_URL` directly, like `orchestrator keys`, so they
work while the service runs. Each first loads `broadcasts/` as the service does at
start-up, so a file just written can be previewed and scheduled without a restart.
A move the broadcast's state does not allow exits with status 1 and says the state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.audience import AudienceError
from orchestrator.broadcasts.loader import load_directory, publish_files
from orchestrator.broadcasts.service import act, get_broadcast, list_broadcasts, preview, progress
from orchestrator.broadcasts.states import TransitionRefused
from orchestrator.cli.keys import in_database
from orchestrator.clock import Clock
from orchestrator.config import get_settings


def _with_files(operation):
    async def run(session: AsyncSession):
        report = load_directory(get_settings().broadcasts_dir)
        for error in report.errors:
            print(f"broadcast not loaded: {error}", file=sys.stderr)
        await publish_files(session, report, Clock().now())
        return await operation(session)

    return in_database(run)


def _list(args: argparse.Namespace) -> int:
    async def rows(session: AsyncSession):
        return [(b, await progress(session, b.id)) for b in await list_broadcasts(session)]

    print(f"{'ID':<32} {'STATE':<10} {'STARTS (UTC)':<17} {'RECIPIENTS':>10} {'MADE':>8} {'SENT':>8} {'FAILED':>7}")
    for broadcast, counts in _with_files(rows):
        starts = f"{broadcast.starts_at:%Y-%m-%d %H:%M}" if broadcast.starts_at else "-"
        recipients = "-" if broadcast.recipients is None else str(broadcast.recipients)
        sent = sum(counts.get(s, 0) for s in ("sent", "delivered", "read"))
        failed = counts.get("failed", 0) + counts.get("undelivered", 0)
        print(
            f"{broadcast.id:<32} {broadcast.state:<10} {starts:<17} {recipients:>10} "
            f"{counts['materialized']:>8} {sent:>8} {failed:>7}"
        )
    return 0


def _preview(args: argparse.Namespace) -> int:
    async def run(session: AsyncSession):
        broadcast = await get_broadcast(session, args.id)
        return None if broadcast is None else await preview(session, broadcast)

    try:
        result = _with_files(run)
    except AudienceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result is None:
        print(f"error: no broadcast '{args.id}'", file=sys.stderr)
        return 1
    print(f"audience now:   {result.audience}")
    print(f"held out:       {result.held_out}")
    print(f"no consent:     {result.no_consent}")
    print(f"no address:     {result.no_address}")
    print(f"would be sent:  {result.would_send}  {result.channels or ''}")
    print(f"sample:         {', '.join(result.sample) or '-'}")
    print("(the audience is frozen when the schedule arrives; this is who is in it now)")
    return 0


def _move(action: str):
    def handler(args: argparse.Namespace) -> int:
        try:
            moved = _with_files(lambda session: act(session, args.id, action, Clock().now()))
        except TransitionRefused as refused:
            print(f"error: {refused}", file=sys.stderr)
            return 1
        print(f"broadcast '{moved.broadcast_id}' is {moved.state}")
        return 0

    return handler


def _schema(args: argparse.Namespace) -> int:
    text = broadcast_schema_text()
    if args.check:
        current = Path(args.check).is_file() and Path(args.check).read_text(encoding="utf-8") == text
        if not current:
            print(f"{args.check} is not the current schema: run `orchestrator broadcasts schema -o {args.check}`")
        return 0 if current else 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def broadcast_schema_text() -> str:
    import json

    from orchestrator.broadcasts.format import BroadcastFile

    schema = BroadcastFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator broadcast"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def add_broadcast_commands(commands: argparse._SubParsersAction) -> None:
    broadcasts = commands.add_parser("broadcasts", help="one message to an audience: list, preview, schedule, ...")
    actions = broadcasts.add_subparsers(dest="broadcasts_command", required=True)
    actions.add_parser("list", help="every broadcast with its state and counts").set_defaults(handler=_list)
    preview_command = actions.add_parser("preview", help="audience count, a sample, who would be left out and why")
    preview_command.add_argument("id")
    preview_command.set_defaults(handler=_preview)
    for action, help_text in (
        ("schedule", "draft → scheduled: sent when its schedule arrives"),
        ("pause", "stop making new messages"),
        ("resume", "carry on after a pause"),
        ("cancel", "stop for good; queued messages are skipped"),
    ):
        command = actions.add_parser(action, help=help_text)
        command.add_argument("id")
        command.set_defaults(handler=_move(action))
    schema = actions.add_parser("schema", help="print the JSON Schema of broadcast files")
    schema.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    schema.add_argument("--check", metavar="FILE", default=None, help="exit 1 if FILE is not the current schema")
    schema.set_defaults(handler=_schema)
