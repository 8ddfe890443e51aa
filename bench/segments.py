"""Segments benchmark: what declaring segments costs ingestion, and what the worker pays.

    .venv/bin/python bench/segments.py [--customers 100000] [--events 20000] [--batch 100]

On a PostgreSQL database created for the run and dropped after:

1. `orchestrator migrate`; `--customers` customers (a third French, a third opted in to SMS)
   with three orders each over the last year, written with `generate_series`;
2. ingestion with NO segment declared: `--events` `Order Completed` Track events for random
   customers of the first third, `--batch` per transaction, through `ingest_committed` in this process (the
   API's code path without HTTP), sequentially: events/s;
3. the 5 segments of SEGMENTS declared and filled (a first sweep of each, timed: one segment
   evaluated over every customer); the same ingestion for the second third: events/s;
4. the worker's side: one segment round (`refresh_segments`) re-evaluating the customers of
   those `--events` events in all 5 segments (seconds, and ms per event), then a sweep of
   all 5 segments; then (2) again, segments undeclared, for the last third (A-B-A: the
   machine's load drifts).

Ingestion writes nothing for segments (the events table is the worker's queue), so (2) and
(3) differ only by noise; what segments cost is the worker's time in (4), on the same
database.
Results: a table on stdout, appended to bench/results/segments-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO, append_results, migrate, scratch_database  # noqa: E402

SEGMENTS = {
    "french-opted-in-buyers-this-year.yaml": None,  # the shipped files
    "repeat-buyers-90d.yaml": None,
    "lapsed-customers.yaml": None,
    "big-spenders-this-year.yaml": None,
    "gold-plan-europe.yaml": "id: gold-plan-europe\nwhere:\n  all:\n    - trait: {name: plan, in: [gold, vip]}\n"
    "    - timezone: {prefix: Europe/}\n    - last_seen: {within: 30d}\n",
}


def segments_dir(root: Path) -> Path:
    directory = root / "segments"
    directory.mkdir()
    for name, text in SEGMENTS.items():
        (directory / name).write_text(text if text else (REPO / "segments" / name).read_text())
    return directory


async def seed(url: str, customers: int) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as connection:
        await connection.execute(
            "INSERT INTO customers (user_id, locale, timezone, traits, created_at, updated_at) "
            "SELECT 'u' || n, CASE n %% 3 WHEN 0 THEN 'fr-FR' WHEN 1 THEN 'en-US' ELSE 'de-DE' END, "
            "CASE n %% 2 WHEN 0 THEN 'Europe/Paris' ELSE 'America/New_York' END, "
            "jsonb_build_object('plan', CASE n %% 5 WHEN 0 THEN 'gold' ELSE 'basic' END), now(), now() "
            "FROM generate_series(0, %s - 1) AS n",
            (customers,),
        )
        await connection.execute(
            "INSERT INTO consents (customer_id, channel, status, source, evidence, recorded_at) "
            "SELECT id, 'sms', 'opted_in', 'api', '{}'::jsonb, now() FROM customers WHERE id % 3 = 0"
        )
        await connection.execute(
            "INSERT INTO events (message_id, customer_id, type, name, properties, timestamp, received_at) "
            "SELECT 'seed-' || c.id || '-' || k, c.id, 'track', 'Order Completed', "
            "jsonb_build_object('revenue', 20 + (c.id * k) % 150), "
            "now() - make_interval(days => ((c.id * 7 + k * 101) % 365)::int), now() "
            "FROM customers AS c, generate_series(1, 3) AS k"
        )
        await connection.execute("ANALYZE")


async def ingest_events(runtime, events: int, batch: int, customers: range) -> float:
    from orchestrator.events.ingest import ingest_committed
    from orchestrator.events.schemas import TrackCall

    started = time.perf_counter()
    for _ in range(events // batch):
        calls = [
            TrackCall(
                userId=f"u{random.choice(customers)}",
                event="Order Completed",
                messageId=str(uuid.uuid4()),
                properties={"revenue": random.randint(10, 200)},
            )
            for _ in range(batch)
        ]
        await ingest_committed(runtime, calls)
    return events / (time.perf_counter() - started)


async def run(args: argparse.Namespace, url: str, root: Path) -> dict:
    from orchestrator.config import Settings
    from orchestrator.segments.loader import load_segments
    from orchestrator.segments.refresh import refresh_segments
    from orchestrator.startup import build_runtime

    await seed(url, args.customers)
    empty = root / "no-segments"
    empty.mkdir()
    settings = Settings(
        database_url=url, segments_dir=empty, email_provider="local", sms_provider="local", whatsapp_provider="local"
    )
    runtime = await build_runtime(settings)
    try:
        # Each run on its own third of the customers, so none meets enrollments another one made
        # (an order enrolls in post-purchase); without, with, then without again (A-B-A).
        third = args.customers // 3
        pools = [range(0, third), range(third, 2 * third), range(2 * third, 3 * third)]
        without = await ingest_events(runtime, args.events, args.batch, pools[0])
        runtime.segments = load_segments(segments_dir(root))
        assert not runtime.segments.errors, runtime.segments.errors
        sweeps = {}
        for segment_id in runtime.segments.segments:
            only = {segment_id: runtime.segments.segments[segment_id]}
            everything, runtime.segments.segments = runtime.segments.segments, only
            started = time.perf_counter()
            await refresh_segments(runtime, sweep=True)
            sweeps[segment_id] = round(time.perf_counter() - started, 3)
            runtime.segments.segments = everything
        with_segments = await ingest_events(runtime, args.events, args.batch, pools[1])
        started = time.perf_counter()
        rounds = await refresh_segments(runtime)  # one round: the customers of those events
        round_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await refresh_segments(runtime, sweep=True)
        sweep_seconds = time.perf_counter() - started
        declared, runtime.segments = runtime.segments, load_segments(empty)
        without_again = await ingest_events(runtime, args.events, args.batch, pools[2])
        runtime.segments = declared
        return {
            "customers": args.customers,
            "events": args.events,
            "batch": args.batch,
            "segments": len(SEGMENTS),
            "events_per_second_without_segments": round(without),
            "events_per_second_with_segments": round(with_segments),
            "events_per_second_without_segments_again": round(without_again),
            "first_sweep_seconds": sweeps,
            "worker_round_seconds": round(round_seconds, 3),
            "worker_round_changes": sum(r.entered + r.left for r in rounds),
            "worker_ms_per_event_all_segments": round(1000 * round_seconds / args.events, 3),
            "sweep_all_segments_seconds": round(sweep_seconds, 2),
        }
    finally:
        await runtime.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, scratch_database("segments") as url:
        root = Path(scratch)
        migrate(url, root / "migrate.log")
        result = asyncio.run(run(args, url, root))
    for key, value in result.items():
        print(f"{key:<52} {value}")
    print(f"appended to {append_results('segments', {**result, 'measured_at': datetime.now(timezone.utc)})}")


if __name__ == "__main__":
    main()
