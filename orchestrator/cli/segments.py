"""`orchestrator segments list|preview`: segments from the command line.

Both read the segment files in `ORCHESTRATOR_SEGMENTS_DIR` and the database in
`DATABASE_URL`. `list` shows each segment's members as the worker last evaluated them;
`preview` evaluates one segment now, live, and prints the count and a sample.
"""

from __future__ import annotations

import argparse
import json
import sys

from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.cli.keys import in_database
from orchestrator.clock import Clock
from orchestrator.config import get_settings
from orchestrator.segments.loader import SegmentCatalog, load_segments


def _catalog() -> SegmentCatalog:
    catalog = load_segments(get_settings().segments_dir)
    for error in catalog.errors:
        print(f"not loaded: {error}", file=sys.stderr)
    return catalog


def _list(args: argparse.Namespace) -> int:
    from orchestrator.segments.membership import member_counts

    catalog = _catalog()
    counts = in_database(member_counts)
    print(f"{'SEGMENT':<40} {'MEMBERS':>8}  NAME")
    for segment in catalog.segments.values():
        print(f"{segment.id:<40} {counts.get(segment.id, 0):>8}  {segment.name}")
    return 1 if catalog.errors else 0


def _preview(args: argparse.Namespace) -> int:
    from orchestrator.segments.preview import preview_segment

    segment = _catalog().segments.get(args.segment)
    if segment is None:
        print(f"no segment '{args.segment}' in {get_settings().segments_dir}", file=sys.stderr)
        return 2

    async def run(session: AsyncSession):
        return await preview_segment(session, segment, Clock().now(), args.limit)

    found = in_database(run)
    if args.format == "json":
        sample = [vars(c) for c in found.sample]
        print(json.dumps({"segment": found.segment_id, "count": found.count, "sample": sample}, indent=2))
        return 0
    print(f"{found.segment_id}: {found.count} customer{'s' if found.count != 1 else ''} match now")
    for customer in found.sample:
        print(
            f"  {customer.user_id:<30} {customer.email or '-':<32} {customer.phone or '-':<16} {customer.locale or '-'}"
        )
    if found.count > len(found.sample):
        print(f"  … and {found.count - len(found.sample)} more")
    return 0


def add_segment_commands(commands: argparse._SubParsersAction) -> None:
    segments = commands.add_parser("segments", help="segments (segments/*.yaml): list them, preview one")
    actions = segments.add_subparsers(dest="segments_command", required=True)
    listing = actions.add_parser("list", help="each segment and its current members")
    listing.set_defaults(handler=_list)
    preview = actions.add_parser("preview", help="who matches a segment now: the count and a sample")
    preview.add_argument("segment", help="the segment id (its file name)")
    preview.add_argument("--limit", type=int, default=20, help="how many customers to show (default 20)")
    preview.add_argument("--format", choices=("text", "json"), default="text")
    preview.set_defaults(handler=_preview)
