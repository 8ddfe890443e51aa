"""Website KPI benchmark: `GET /v1/kpis/site` over millions of page calls on PostgreSQL.

    .venv/bin/python bench/site_kpis.py [--page-calls 10000000] [--fresh 10000] [--repeat 25]
                                        [--target-ms 300] [--time-rebuild] [--keep] [--no-save]

1. A database of its own on the local PostgreSQL (bench.harness.scratch_database), migrated.
2. Generated inside PostgreSQL (`INSERT … SELECT … FROM generate_series`, no rows through
   Python): `--page-calls` / 3 visits over 90 days (1 to 5 pages each, 3 on average, a
   minute apart; a visitor every 4 visits; 40 % from our SMS, e-mail and WhatsApp links
   across three journeys, 20 % from Google, 10 % from a newsletter's UTM, 30 % direct;
   2-5 % converted), then the `--page-calls` page events those visits are made of, with an
   `Order Completed` per converted visit. Plain indexes are dropped first and built once at
   the end, then VACUUM ANALYZE, as a bulk load is done. The visits are generated, not
   folded: folding 10 million views in Python is what `--time-rebuild` measures, apart.
3. `site_daily` and `site_hourly` counted from all the visits (timed: what counting the
   rollups again costs, as after an upgrade that reshapes them), and the fold's watermarks
   set, as after the worker's first refresh.
4. The worker's incremental fold (`refresh_visits`) timed over `--fresh` new page calls of
   2,000 visitors (half of them returning visitors with visits on record).
5. `--repeat` timed calls of each `GET /v1/kpis/site` shape through the real app (httpx
   over ASGITransport), after two warm-up calls: p50 / p95 / max. Shapes: whole days,
   whole months, whole hours at the ends, and ranges cut at odd minutes (the minutes left
   are counted from `visits`). Exit status 1 when a p95 misses `--target-ms`.
6. For the totals shapes, the visitors the read reports against an exact
   `COUNT(DISTINCT visitor)` over the same visits (not timed): the sketch's error.

Results are appended to bench/results/site_kpis-<date>.json (`--no-save` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import append_results, in_process_service, percentile, scratch_database  # noqa: E402

END = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAYS = 90
START = END - timedelta(days=DAYS)
NOW = END + timedelta(days=1)
JOURNEYS = ("welcome", "abandoned-cart", "post-purchase")
TABLES = ("events", "visits")


def generation_sql(page_calls: int) -> list[tuple[str, str]]:
    visits = max(1, page_calls // 3)
    visitors = max(1, visits // 4)
    t = f"(timestamptz '{START.isoformat()}' + (i::float8 / {visits}) * interval '{DAYS} days')"
    pages = "(1 + (i * 7) % 5)"  # 1, 3, 5, 2, 4: 3 on average
    kind = "(i % 10)"
    journey = f"(ARRAY{list(JOURNEYS)})[1 + (i / 10) % 3]"
    channel = f"CASE WHEN {kind} < 2 THEN 'sms' WHEN {kind} = 2 THEN 'email' WHEN {kind} = 3 THEN 'whatsapp'"
    channel += f" WHEN {kind} < 6 THEN 'referral' WHEN {kind} = 6 THEN 'email' ELSE 'direct' END"
    source = f"CASE WHEN {kind} < 4 THEN 'orchestrator' WHEN {kind} < 6 THEN 'www.google.com'"
    source += f" WHEN {kind} = 6 THEN 'newsletter' ELSE 'direct' END"
    landing = (
        f"'https://shop.example/l/' || i || CASE WHEN {kind} < 4 THEN '?utm_source=orchestrator&utm_medium=' "
        f"|| ({channel}) || '&utm_campaign=' || {journey} || '&orc=' || i WHEN {kind} = 6 "
        "THEN '?utm_source=newsletter&utm_medium=email' ELSE '' END"
    )
    converted = f"(i * 13) % 100 < CASE WHEN {kind} < 4 THEN 5 ELSE 2 END"
    return [
        (
            "visits",
            f"""INSERT INTO visits (id, visitor, started_at, ended_at, seconds, pages, landing_url, landing_path,
                referrer, utm_source, utm_medium, utm_campaign, message_id, channel, journey_id, broadcast_id, source,
                converted_at)
            SELECT i, 'a:v' || (i % {visitors}), {t}, {t} + ({pages} - 1) * interval '60 s', ({pages} - 1) * 60,
                   {pages}, {landing}, '/l/' || i,
                   CASE WHEN {kind} IN (4, 5) THEN 'https://www.google.com/' END,
                   CASE WHEN {kind} < 4 THEN 'orchestrator' WHEN {kind} = 6 THEN 'newsletter' END,
                   CASE WHEN {kind} < 4 OR {kind} = 6 THEN {channel} END,
                   CASE WHEN {kind} < 4 THEN {journey} END,
                   CASE WHEN {kind} < 4 THEN i END, {channel}, CASE WHEN {kind} < 4 THEN {journey} ELSE '' END, '',
                   {source}, CASE WHEN {converted} THEN {t} + {pages} * interval '60 s' + interval '10 minutes' END
            FROM generate_series(1, {visits}) i""",
        ),
        (
            "page events",
            """INSERT INTO events (message_id, anonymous_id, type, name, properties, timestamp, received_at)
            SELECT 'p-' || v.id || '-' || k, substr(v.visitor, 3), 'page', 'Page',
                   jsonb_build_object('url', CASE WHEN k = 1 THEN v.landing_url ELSE 'https://shop.example/p/' || k END,
                                      'path', CASE WHEN k = 1 THEN v.landing_path ELSE '/p/' || k END,
                                      'referrer', CASE WHEN k = 1 THEN v.referrer END),
                   v.started_at + (k - 1) * interval '60 s', v.started_at + (k - 1) * interval '60 s'
            FROM visits v, generate_series(1, v.pages) k""",
        ),
        (
            "order events",
            """INSERT INTO events (message_id, anonymous_id, type, name, properties, timestamp, received_at)
            SELECT 'o-' || v.id, substr(v.visitor, 3), 'track', 'Order Completed',
                   jsonb_build_object('order_id', 'O-' || v.id, 'revenue', 40 + v.id % 100), v.converted_at,
                   v.converted_at
            FROM visits v WHERE v.converted_at IS NOT NULL""",
        ),
        ("visit ids", "SELECT setval(pg_get_serial_sequence('visits', 'id'), (SELECT max(id) FROM visits))"),
    ]


def generate(database_url: str, page_calls: int) -> dict[str, float]:
    from orchestrator.storage.database import create_engine
    from orchestrator.storage.migrate import upgrade_to_head

    async def schema() -> None:
        engine = create_engine(database_url)
        await upgrade_to_head(engine)
        await engine.dispose()

    asyncio.run(schema())
    seconds: dict[str, float] = {}

    def timed(label: str, work) -> None:
        began = time.perf_counter()
        count = work()
        seconds[label] = round(time.perf_counter() - began, 1)
        print(f"  {label:<20} {max(count or 0, 0):>10} rows  {seconds[label]:>7.1f} s", flush=True)

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '256MB'")
        indexes = connection.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [list(TABLES)],
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        for label, statement in generation_sql(page_calls):
            timed(label, lambda: connection.execute(statement).rowcount)
        timed(f"{len(indexes)} indexes", lambda: [connection.execute(d) for _, d in indexes] and 0)
        timed("vacuum analyze", lambda: connection.execute("VACUUM ANALYZE") and 0)
    return seconds


def shapes() -> dict[str, dict]:
    ninety = {"from": START.isoformat(), "to": END.isoformat()}
    thirty = {"from": (END - timedelta(days=30)).isoformat(), "to": END.isoformat()}
    february = {"from": "2026-02-01T00:00:00+00:00", "to": "2026-03-01T00:00:00+00:00"}
    edges = {"from": (START + timedelta(hours=6)).isoformat(), "to": (END - timedelta(hours=6)).isoformat()}
    odd = {
        "from": (START + timedelta(hours=5, minutes=17)).isoformat(),
        "to": (END - timedelta(minutes=403)).isoformat(),
    }
    one_day = {"from": (END - timedelta(hours=22)).isoformat(), "to": (END - timedelta(hours=2)).isoformat()}
    day_odd = {
        "from": (END - timedelta(hours=14, minutes=43)).isoformat(),
        "to": (END - timedelta(minutes=317)).isoformat(),
    }
    minutes = {
        "from": (END - timedelta(hours=3, minutes=41)).isoformat(),
        "to": (END - timedelta(hours=3, minutes=14)).isoformat(),
    }
    return {
        "90 days, totals": ninety,
        "90 days by channel": {**ninety, "group_by": "channel"},
        "90 days by day and channel": {**ninety, "group_by": ["day", "channel"]},
        "30 days by journey and source": {**thirty, "group_by": ["journey", "source"]},
        "February (whole month), totals": february,
        "February by channel": {**february, "group_by": "channel"},
        "one journey, 90 days by day": {**ninety, "journey": "post-purchase", "group_by": "day"},
        "all time by channel": {"group_by": "channel"},
        "90 days 6 h in at both ends, by channel": {**edges, "group_by": "channel"},
        "20 hours of one day, by channel": {**one_day, "group_by": "channel"},
        "90 days cut at odd minutes (05:17, 17:17), totals": odd,
        "90 days cut at odd minutes, by channel": {**odd, "group_by": "channel"},
        "one day 09:17 to 18:43, by channel": {**day_odd, "group_by": "channel"},
        "27 minutes (20:19 to 20:46), totals": minutes,
    }


async def visitors_error(runtime, params: dict, reported: int) -> dict:
    """The exact distinct visitors of the visits a totals shape covers, and the read's error."""
    import sqlalchemy as sa

    bounds = {"since": datetime.fromisoformat(params.get("from", "1900-01-01T00:00:00+00:00"))}
    bounds["until"] = datetime.fromisoformat(params.get("to", "2999-01-01T00:00:00+00:00"))
    async with runtime.sessions() as session:
        exact = (
            await session.exec(
                sa.text(
                    "SELECT count(DISTINCT visitor) FROM visits WHERE started_at >= :since AND started_at < :until"
                ).bindparams(**bounds)
            )
        ).scalar()
    error = round(100 * (reported - exact) / exact, 2) if exact else None
    print(f"  {'':<50} visitors {reported:,} reported, {exact:,} exact: {error} %", flush=True)
    return {"visitors_exact": exact, "visitors_error_percent": error}


async def time_everything(database_url: str, fresh: int, repeat: int, time_rebuild: bool) -> dict:
    import sqlalchemy as sa

    from orchestrator.kpis.rollup import save_watermark
    from orchestrator.kpis.site_cells import recount_site_days
    from orchestrator.kpis.site_fold import SITE, SITE_CELLS, rebuild_visits, refresh_visits

    runtime, app = await in_process_service(database_url, NOW)
    results: dict = {}
    try:
        began = time.perf_counter()
        async with runtime.sessions() as session, session.begin():
            await recount_site_days(session, None)
            await save_watermark(session, NOW, SITE)
            await save_watermark(session, NOW, SITE_CELLS)
            rollup_rows = {
                table: (await session.exec(sa.text(f"SELECT count(*) FROM {table}"))).scalar()
                for table in ("site_daily", "site_hourly")
            }
        results["site rollups build seconds"] = round(time.perf_counter() - began, 1)
        results["site rollup rows"] = rollup_rows
        print(
            f"  site_daily and site_hourly counted from all visits in {results['site rollups build seconds']} s:"
            f" {rollup_rows}",
            flush=True,
        )

        async with runtime.sessions() as session, session.begin():
            before = (await session.exec(sa.text("SELECT count(*) FROM visits"))).scalar()
            await session.exec(
                sa.text(
                    """INSERT INTO events (message_id, anonymous_id, type, name, properties, timestamp, received_at)
                    SELECT 'fresh-' || j, CASE WHEN j % 5 < 2 THEN 'v' || (j % 1000) ELSE 'fresh-' || (j % 1000) END,
                           'page', 'Page', jsonb_build_object('url', 'https://shop.example/f/' || j),
                           :end + (j / 1000) * interval '2 minutes', :now
                    FROM generate_series(1, :fresh) j"""
                ).bindparams(end=END, now=NOW + timedelta(seconds=1), fresh=fresh)
            )
        runtime.clock.advance(timedelta(minutes=1))
        began = time.perf_counter()
        days = await refresh_visits(runtime)
        results["incremental fold"] = {
            "page_calls": fresh,
            "seconds": round(time.perf_counter() - began, 2),
            "days_recounted": len(days or ()),
        }
        async with runtime.sessions() as session:
            after = (await session.exec(sa.text("SELECT count(*) FROM visits"))).scalar()
        results["incremental fold"]["visits_added"] = after - before
        print(f"  the worker's fold of {fresh} new page calls: {results['incremental fold']}", flush=True)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            for name, params in shapes().items():
                results[name] = await time_shape(client, name, params, repeat)
                if "group_by" not in params:
                    results[name] |= await visitors_error(runtime, params, results[name]["visitors"])
        if time_rebuild:
            began = time.perf_counter()
            await rebuild_visits(runtime)
            results["full fold seconds"] = round(time.perf_counter() - began, 1)
            print(f"  every page call folded again (rebuild_visits): {results['full fold seconds']} s", flush=True)
    finally:
        await runtime.aclose()
    return results


async def time_shape(client, name: str, params: dict, repeat: int) -> dict:
    timings = []
    for attempt in range(repeat + 2):
        began = time.perf_counter()
        response = await client.get("/v1/kpis/site", params=params)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        if attempt >= 2:  # two warm-up calls: connections, caches, plans
            timings.append(elapsed)
    rows = response.json()["rows"]
    result = {
        "params": params,
        "rows": len(rows),
        "visits": sum(r["visits"] for r in rows),
        "visitors": sum(r["visitors"] for r in rows),  # of the one row, for a totals shape
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1),
    }
    print(
        f"  {name:<50} {result['rows']:>4} rows {result['visits']:>10} visits  p50 {result['p50_ms']:>7.1f} ms"
        f"  p95 {result['p95_ms']:>7.1f} ms  max {result['max_ms']:>7.1f} ms",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--page-calls", type=int, default=10_000_000)
    parser.add_argument("--fresh", type=int, default=10_000, help="new page calls the incremental fold is timed on")
    parser.add_argument("--repeat", type=int, default=25, help="timed calls per query shape")
    parser.add_argument("--target-ms", type=float, default=300.0, help="p95 every shape must stay under")
    parser.add_argument("--time-rebuild", action="store_true", help="also time folding every page call again")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    began = time.perf_counter()
    with scratch_database("site_kpis", keep=args.keep) as database_url:
        print(f"generating {args.page_calls:,} page calls", flush=True)
        generation = generate(database_url, args.page_calls)
        print(f"GET /v1/kpis/site, {args.repeat} timed calls per shape", flush=True)
        results = asyncio.run(time_everything(database_url, args.fresh, args.repeat, args.time_rebuild))
    total = round(time.perf_counter() - began, 1)
    worst = max(r["p95_ms"] for r in results.values() if isinstance(r, dict) and "p95_ms" in r)
    print(f"worst p95 {worst} ms (target {args.target_ms:g} ms); total {total} s")
    if not args.no_save:
        path = append_results(
            "site_kpis",
            {
                "page_calls": args.page_calls,
                "repeat": args.repeat,
                "generation_seconds": generation,
                "total_seconds": total,
                "worst_p95_ms": worst,
                "results": results,
            },
        )
        print(f"results appended to {path}")
    return 0 if worst < args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
