"""KPI benchmark: `GET /v1/kpis` over a million messages on PostgreSQL, one run.

    .venv/bin/python bench/kpis.py [--messages 1000000] [--conversions 100000] [--repeat 25]

1. Creates a database of its own on the local PostgreSQL (`ORCHESTRATOR_TEST_POSTGRES_URL`,
   default postgresql://postgres@127.0.0.1:5432/test, as the tests use) and drops it at the
   end (`--keep` keeps it).
2. Generates, inside PostgreSQL (`INSERT … SELECT … FROM generate_series`, no ORM, no
   rows through Python): customers (messages / 5), one enrollment per message (5 % held
   out in two journeys), `--messages` messages over 90 days across 5 journeys, 10 steps and
   3 channels with realistic bodies and a status mix (skipped, failed, undelivered, sent,
   delivered, read, opens, clicks, bounces, SMS prices), a status event per delivery and
   bounce, replies, STOPs and unsubscribes, NPS answers, `--conversions` attributed orders
   with their `Order Completed` events plus half as many unattributed orders. Then VACUUM
   ANALYZE, as autovacuum would.
3. Builds the daily KPI rollups from all of it (timed: what the first read after an
   upgrade does), then times `--repeat` calls of each `GET /v1/kpis` shape through the real
   app (httpx over ASGITransport: routing, validation, SQL, serialization) after two
   warm-up calls, and prints p50 / p95 / max per shape. Reads never refresh the rollups (the
   worker does); one shape changes a message and runs the worker's refresh before each call,
   timed apart (`refresh_*_ms`: one day counted again). Exit status 1 when a read's p95
   misses `--target-ms` (200).
4. Times, outside the target, what is still counted live from the raw tables:
   customer-level figures (`include=customers`) and a journey's funnel (`/stats`).

Results also go to `bench/results/kpis-<date>.json` (`--no-save` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import in_process_service  # noqa: E402

ADMIN_URL = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
END = datetime(2026, 3, 2, tzinfo=timezone.utc)  # messages are created over the 90 days before
DAYS = 90
START = END - timedelta(days=DAYS)
NOW = END + timedelta(days=2)  # the engine clock: after the last receipt, reply and NPS answer
# (journey, step, channel, template, holdout percent)
STEPS = [
    ("welcome", "welcome-email", "email", "welcome-email", 0),
    ("abandoned-cart", "discount-sms", "sms", "abandoned-cart-sms", 5),
    ("post-purchase", "whatsapp-follow-up", "whatsapp", "post-purchase-whatsapp", 0),
    ("post-purchase", "email-follow-up", "email", "post-purchase-email", 0),
    ("nps-survey", "nps-question", "sms", "nps-question", 0),
    ("nps-survey", "thanks-promoter", "sms", "nps-thanks-promoter", 0),
    ("winback", "winback-email", "email", "winback-email", 5),
    ("winback", "winback-sms", "sms", "winback-sms", 5),
    ("winback", "winback-whatsapp", "whatsapp", "winback-whatsapp", 5),
    ("abandoned-cart", "reminder-email", "email", "abandoned-cart-email", 5),
]
SMS_BODY = (
    "You left something in your cart! Use code CART15-USER for 15% off in the next 72 hours. Reply STOP to opt out."
)
EMAIL_HTML = "<p>Hi there,</p><p>" + "Thanks for being with us. Here is what is new this week. " * 12 + "</p>"


def generation_sql(messages: int, conversions: int) -> list[tuple[str, str]]:
    customers = max(1, messages // 5)
    steps = ", ".join(f"({i}, '{j}', '{s}', '{c}', '{t}', {h})" for i, (j, s, c, t, h) in enumerate(STEPS))
    t = f"(timestamptz '{START.isoformat()}' + (i::float8 / {messages}) * interval '{DAYS} days')"
    return [
        (
            "steps",
            f"CREATE TEMP TABLE bench_steps (idx int, journey text, step text, channel text, template text,"
            f" holdout int); INSERT INTO bench_steps VALUES {steps}",
        ),
        (
            "customers",
            f"""INSERT INTO customers (id, user_id, email, phone, traits, created_at, updated_at)
            SELECT i, 'user-' || i, 'user' || i || '@example.com', '+1415' || lpad(i::text, 7, '0'), '{{}}',
                   timestamptz '{START.isoformat()}', timestamptz '{START.isoformat()}'
            FROM generate_series(1, {customers}) i""",
        ),
        (
            "enrollments",
            f"""INSERT INTO enrollments (id, journey_id, journey_version, customer_id, status, entered_at,
                ended_at, context, holdout, goal_deadline, converted_at)
            SELECT i, s.journey, 'v1', 1 + (i::bigint * 7919) % {customers}, 'completed', {t}, {t} + interval '1 hour',
                   '{{}}', (i * 31) % 100 < s.holdout, {t} + interval '3 days',
                   CASE WHEN (i::bigint * 131) % 1000 < CASE WHEN (i * 31) % 100 < s.holdout THEN 60 ELSE 80 END
                        THEN {t} + interval '5 hours' END
            FROM generate_series(1, {messages}) i JOIN bench_steps s ON s.idx = i % {len(STEPS)}""",
        ),
        (
            "messages",
            f"""INSERT INTO messages (id, send_key, enrollment_id, customer_id, journey_id, journey_version, step_id,
                channel, provider, template, locale, to_address, subject, body, html, template_metadata, marketing,
                status, status_reason, error_code, provider_message_id, cost, cost_currency, attempts, created_at,
                sent_at, delivered_at, first_opened_at, first_clicked_at, updated_at)
            SELECT e.id, e.id || ':' || s.step, e.id, e.customer_id, s.journey, 'v1', s.step, s.channel,
                   CASE s.channel WHEN 'email' THEN 'sendgrid' ELSE 'twilio' END, s.template, 'en', 'user@example.com',
                   CASE WHEN s.channel = 'email' THEN 'News for you' END, '{SMS_BODY}',
                   CASE WHEN s.channel = 'email' THEN '{EMAIL_HTML}' END, '{{}}', true,
                   CASE WHEN e.holdout OR b < 50 THEN 'skipped' WHEN b < 60 THEN 'failed'
                        WHEN b < 80 THEN CASE WHEN s.channel = 'email' AND b < 70 THEN 'failed' ELSE 'undelivered' END
                        WHEN b < 180 THEN 'sent' WHEN b >= 920 AND s.channel = 'whatsapp' THEN 'read' ELSE 'delivered' END,
                   CASE WHEN e.holdout THEN 'holdout group' WHEN b < 50 THEN CASE s.channel WHEN 'email'
                        THEN 'no email address' ELSE 'no ' || s.channel || ' opt-in' END END,
                   CASE WHEN NOT e.holdout AND b >= 50 AND b < 80 THEN '30003' END,
                   CASE WHEN NOT e.holdout AND b >= 60 THEN 'SM' || md5(e.id::text) END,
                   CASE WHEN NOT e.holdout AND b >= 60 THEN CASE s.channel WHEN 'sms' THEN 0.0079
                        WHEN 'whatsapp' THEN 0.0050 END END,
                   CASE WHEN s.channel <> 'email' THEN 'USD' END, 1, e.entered_at + interval '1 hour',
                   CASE WHEN NOT e.holdout AND b >= 60 THEN e.entered_at + interval '1 hour 2 seconds' END,
                   CASE WHEN NOT e.holdout AND b >= 180 THEN e.entered_at + interval '1 hour 12 seconds' END,
                   CASE WHEN NOT e.holdout AND b >= 180 AND s.channel = 'email' AND (e.id * 17) % 100 < 35
                        THEN e.entered_at + interval '3 hours' END,
                   CASE WHEN NOT e.holdout AND b >= 180 AND s.channel = 'email' AND (e.id * 17) % 100 < 9
                        THEN e.entered_at + interval '3 hours 1 minute' END,
                   e.entered_at + interval '1 hour'
            FROM enrollments e JOIN bench_steps s ON s.idx = e.id % {len(STEPS)},
                 LATERAL (SELECT ((e.id * 7919 + 13) % 1000)::int AS b) bucket""",
        ),
        (
            "status events",
            """INSERT INTO message_status_events (message_id, source, status, detail, occurred_at)
            SELECT id, provider, CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
                                      WHEN channel <> 'email' THEN 'undelivered'
                                      WHEN status = 'failed' THEN 'bounce' ELSE 'blocked' END,
                   '{}', coalesce(delivered_at, sent_at + interval '5 seconds')
            FROM messages WHERE delivered_at IS NOT NULL OR (sent_at IS NOT NULL AND status IN ('failed', 'undelivered'))""",
        ),
        (
            "order events",
            f"""INSERT INTO events (id, message_id, customer_id, type, name, properties, timestamp, received_at)
            SELECT i, 'order-' || i, 1 + (i::bigint * 104729) % {customers}, 'track', 'Order Completed',
                   jsonb_build_object('order_id', 'O-' || i, 'revenue', round((10 + (i * 37) % 19000 / 100.0)::numeric, 2),
                                      'currency', 'USD'),
                   {t.replace("i::float8", "(i % " + str(messages) + ")::float8")},
                   {t.replace("i::float8", "(i % " + str(messages) + ")::float8")}
            FROM generate_series(1, {conversions * 3 // 2}) i""",
        ),
        (
            "conversions",
            f"""INSERT INTO conversions (order_key, event_id, customer_id, enrollment_id, journey_id, message_id,
                step_id, channel, template, revenue, currency, converted_at)
            SELECT 'O-' || n, n, m.customer_id, m.enrollment_id, m.journey_id, m.id, m.step_id, m.channel, m.template,
                   round((10 + (n * 37) % 19000 / 100.0)::numeric, 2), 'USD', m.delivered_at + interval '2 hours'
            FROM (SELECT m.*, row_number() OVER (ORDER BY id) AS n FROM messages m
                  WHERE delivered_at IS NOT NULL AND id % 7 = 0 LIMIT {conversions}) m""",
        ),
        (
            "replies and STOPs",
            """INSERT INTO inbound_messages (provider_message_id, customer_id, channel, from_address,
                to_address, body, keyword, handled_by, received_at)
            SELECT 'IN' || id, customer_id, channel, '+14150000000', '+15005550006',
                   CASE WHEN (id * 53) % 1000 < 20 THEN 'thanks!' ELSE 'STOP' END,
                   CASE WHEN (id * 53) % 1000 >= 20 THEN 'opt_out' END, 'keyword', sent_at + interval '1 hour'
            FROM messages WHERE channel <> 'email' AND sent_at IS NOT NULL AND (id * 53) % 1000 < 25""",
        ),
        (
            "opt-outs",
            """INSERT INTO consents (customer_id, channel, status, source, evidence, recorded_at)
            SELECT customer_id, channel, 'opted_out', CASE channel WHEN 'email' THEN 'unsubscribe_link'
                   ELSE channel || '_keyword' END, '{}', sent_at + interval '1 hour'
            FROM messages WHERE sent_at IS NOT NULL AND ((channel <> 'email' AND (id * 53) % 1000 BETWEEN 20 AND 24)
                                                     OR (channel = 'email' AND (id * 53) % 1000 < 3))""",
        ),
        (
            "nps answers",
            """INSERT INTO nps_responses (customer_id, journey_id, score, received_at)
            SELECT customer_id, journey_id, (id * 7) % 11, delivered_at + interval '1 day'
            FROM messages WHERE step_id = 'nps-question' AND delivered_at IS NOT NULL AND (id / 10 * 29) % 10 < 3""",
        ),
    ]


AFTER_A_CHANGE = "after a change"
# Counted live, not from the rollups: reported, outside the target.
LIVE_SHAPES = {
    "customer figures (include=customers)": ("/v1/kpis", {"include": "customers"}),
    "customer figures of one journey": ("/v1/kpis", {"include": "customers", "journey": "winback"}),
    "journey stats (funnel), all time": ("/v1/journeys/abandoned-cart/stats", {}),
}
LIVE_REPEAT = 5


def query_shapes() -> dict[str, dict]:
    week, month = (END - timedelta(days=7)).isoformat(), (END - timedelta(days=30)).isoformat()
    day = (END - timedelta(days=1)).isoformat()
    return {
        "all, no grouping": {},
        "all, by journey": {"group_by": ["journey"]},
        "all, by journey+step+channel+template+day": {"group_by": ["journey", "step", "channel", "template", "day"]},
        "last 7 days, by day": {"from": week, "to": END.isoformat(), "group_by": ["day"]},
        "last 30 days, by channel": {"from": month, "group_by": ["channel"]},
        "journey, last 30 days, by step+day": {"journey": "abandoned-cart", "from": month, "group_by": ["step", "day"]},
        "journey, all, by step (+lift)": {"journey": "winback", "group_by": ["step"]},
        "channel=email, by template": {"channel": "email", "group_by": ["template"]},
        "journey+step+channel+template, 1 day": {
            "journey": "winback",
            "step": "winback-sms",
            "channel": "sms",
            "template": "winback-sms",
            "from": day,
        },
        "last 24 hours (not midnight-aligned)": {
            "from": (END - timedelta(hours=24, minutes=30)).isoformat(),
            "to": (END - timedelta(minutes=30)).isoformat(),
            "group_by": ["journey"],
        },
        f"{AFTER_A_CHANGE}: 1 day recounted, by journey": {"group_by": ["journey"]},
    }


async def touch_one_message(runtime, attempt: int) -> None:
    """Mark a message of the last day changed (`updated_at`), as a status webhook does: the
    next refresh counts that day again. A different message each call."""
    import sqlalchemy as sa

    from orchestrator.storage.models import Message

    async with runtime.sessions() as session, session.begin():
        await session.exec(
            sa.update(Message.__table__)
            .where(
                Message.__table__.c.id == (sa.select(sa.func.max(Message.__table__.c.id)).scalar_subquery() - attempt)
            )
            .values(updated_at=runtime.clock.now())
        )


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def time_shape(client, runtime, name: str, path: str, params: dict, repeat: int) -> dict:
    from orchestrator.kpis.rollup import refresh_rollups

    timings, refreshes = [], []
    for attempt in range(repeat + 2):
        if name.startswith(AFTER_A_CHANGE):
            await touch_one_message(runtime, attempt)
            began = time.perf_counter()
            await refresh_rollups(runtime)  # the worker's job, between the change and the read
            refreshes.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        response = await client.get(path, params=params)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        if attempt >= 2:  # two warm-up calls: connections, caches, plans
            timings.append(elapsed)
    body = response.json()
    result = {
        "path": path,
        "params": params,
        "rows": len(body.get("rows", body.get("steps", []))),
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1),
    }
    if refreshes[2:]:
        result.update(
            refresh_p50_ms=round(statistics.median(refreshes[2:]), 1),
            refresh_p95_ms=round(percentile(refreshes[2:], 0.95), 1),
            refresh_max_ms=round(max(refreshes[2:]), 1),
        )
    print(
        f"  {name:<45} {result['rows']:>5} rows  p50 {result['p50_ms']:>7.1f} ms"
        f"  p95 {result['p95_ms']:>7.1f} ms  max {result['max_ms']:>7.1f} ms",
        flush=True,
    )
    if refreshes[2:]:
        print(
            f"  {'  the worker refresh before each of those':<51}  p50 {result['refresh_p50_ms']:>7.1f} ms"
            f"  p95 {result['refresh_p95_ms']:>7.1f} ms  max {result['refresh_max_ms']:>7.1f} ms",
            flush=True,
        )
    return result


async def time_queries(database_url: str, repeat: int) -> tuple[dict[str, dict], dict[str, dict]]:
    from orchestrator.kpis.rollup import rebuild_rollups

    runtime, app = await in_process_service(database_url, NOW)
    results, live = {}, {}
    try:
        began = time.perf_counter()
        await rebuild_rollups(runtime)  # what the first KPI read after an upgrade would do
        results["rollup build"] = {"seconds": round(time.perf_counter() - began, 1)}
        print(f"  rollup built from all messages in {results['rollup build']['seconds']} s", flush=True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            for name, params in query_shapes().items():
                results[name] = await time_shape(client, runtime, name, "/v1/kpis", params, repeat)
            print(f"counted live (outside the target), {LIVE_REPEAT} timed calls each", flush=True)
            for name, (path, params) in LIVE_SHAPES.items():
                live[name] = await time_shape(client, runtime, name, path, params, LIVE_REPEAT)
    finally:
        await runtime.aclose()
    return results, live


TABLES = (
    "customers",
    "enrollments",
    "messages",
    "message_status_events",
    "events",
    "conversions",
    "inbound_messages",
    "consents",
    "nps_responses",
)


def generate(database_url: str, messages: int, conversions: int) -> dict[str, float]:
    """Load the data as a bulk load is done: foreign-key triggers off (the rows are
    consistent by construction), plain indexes dropped first and built once at the end."""
    from orchestrator.storage.database import create_engine
    from orchestrator.storage.migrate import upgrade_to_head

    async def schema() -> None:  # the schema a deployment gets: the migrations
        engine = create_engine(database_url)
        await upgrade_to_head(engine)
        await engine.dispose()

    asyncio.run(schema())
    seconds = {}

    def timed(label: str, work, count_rows: bool = True) -> None:
        began = time.perf_counter()
        count = work()
        seconds[label] = round(time.perf_counter() - began, 1)
        rows = f"{max(count, 0):>9} rows" if count_rows else " " * 14
        print(f"  {label:<20} {rows}  {seconds[label]:>6.1f} s", flush=True)

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")  # no FK triggers for this load
        connection.execute("SET maintenance_work_mem = '256MB'")
        indexes = connection.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [list(TABLES)],
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        for label, statement in generation_sql(messages, conversions):
            timed(label, lambda: connection.execute(statement).rowcount)
        timed(
            f"{len(indexes)} indexes",
            lambda: [connection.execute(definition) for _, definition in indexes] and 0,
            count_rows=False,
        )
        timed("vacuum analyze", lambda: connection.execute("VACUUM ANALYZE") and 0, count_rows=False)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=25, help="timed calls per query shape")
    parser.add_argument("--target-ms", type=float, default=200.0, help="p95 every shape must stay under")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()

    name = f"orchestrator_bench_kpis_{uuid.uuid4().hex[:8]}"
    database_url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    began = time.perf_counter()
    try:
        print(f"generating {args.messages} messages, {args.conversions} conversions in {name}", flush=True)
        generation = generate(database_url, args.messages, args.conversions)
        print(f"GET /v1/kpis, {args.repeat} timed calls per shape", flush=True)
        results, live = asyncio.run(time_queries(database_url, args.repeat))
    finally:
        if args.keep:
            print(f"kept {database_url}")
        else:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    total = round(time.perf_counter() - began, 1)
    worst = max(r["p95_ms"] for r in results.values() if "p95_ms" in r)
    print(f"worst p95 {worst} ms (target {args.target_ms:g} ms); total {total} s")
    if not args.no_save:
        results_dir = BENCH_DIR / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"kpis-{datetime.now(timezone.utc).date().isoformat()}.json"
        runs = json.loads(path.read_text()) if path.exists() else []
        runs.append(
            {
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "messages": args.messages,
                "conversions": args.conversions,
                "repeat": args.repeat,
                "generation_seconds": generation,
                "total_seconds": total,
                "shapes": results,
                "live_shapes": live,
            }
        )
        path.write_text(json.dumps(runs, indent=2) + "\n")
        print(f"results appended to {path.relative_to(REPO)}")
    return 0 if worst < args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
