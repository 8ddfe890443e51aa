"""Console benchmark: every console page over a million messages on PostgreSQL, one run.

    .venv/bin/python bench/console.py [--messages 1000000] [--conversions 100000] [--repeat 20]

1. Generates the same data as `bench/kpis.py` (its `generate`: customers = messages / 5,
   enrollments, messages over 90 days in 5 journeys and 3 channels with statuses, opens,
   clicks, replies, STOPs, NPS answers and attributed orders), in a database of its own on the
   local PostgreSQL, dropped at the end (`--keep` keeps it). The journeys of the data are not
   the files under journeys/, so each journey page asks for one the data has.
2. Adds the audiences (set-up, not timed): a quarter of the customers French (`locale: fr`,
   Paris) with an SMS opt-in, half of them with an order this year; one sweep of the shipped segments/ through the service code
   (members, the entries log, a size sample) plus 90 days of hourly size samples; and
   broadcasts in each state, among them one to the French buyers' segment whose snapshot
   is taken and whose messages are made by the service code, then marked delivered (2 % failed).
   Then builds the KPI rollups, as the worker keeps them.
3. Times `--repeat` requests of each console page through the real app (httpx over
   ASGITransport: the page, its in-process calls to `/v1`, SQL, rendering) after two warm-up
   calls, logged in with an admin key, and beside each the same `/v1` calls made directly:
   the alternative a user of the API alone would make, so the console's own cost shows.
   Prints p50 / p95 / max per page; exit status 1 when a page's p95 misses `--target-ms` (300).

Results also go to `bench/results/console-<date>.json` (`--no-save` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for path in (str(REPO), str(BENCH_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

from harness import append_results, in_process_service, scratch_database  # noqa: E402
from kpis import END, NOW, generate, percentile  # noqa: E402  (the same data as the KPI benchmark)

SINCE = END.date().toordinal() - 13


def pages() -> dict[str, tuple[str, dict, list[tuple[str, dict]]]]:
    """name → (console path, params, the /v1 calls that page makes)."""
    since = datetime.fromordinal(SINCE).date().isoformat()
    until = END.date().isoformat()
    after = (END + timedelta(days=1)).date().isoformat()  # the page's range ends after its last day
    window = {"from": f"{since}T00:00:00+00:00", "to": f"{after}T00:00:00+00:00"}
    paris = {"from": f"{since}T00:00:00+01:00", "to": f"{after}T00:00:00+01:00"}
    return {
        "overview, 14 days": (
            "/",
            {"since": since, "until": until},
            [
                ("/v1/kpis/series", {**window, "granularity": "day", "zone": "UTC"}),
                ("/v1/kpis", {**window, "include": "customers"}),
                ("/v1/journeys", {}),
            ],
        ),
        "overview, 14 days, one journey": (
            "/",
            {"since": since, "until": until, "journey": "abandoned-cart"},
            [
                ("/v1/kpis/series", {**window, "journey": "abandoned-cart", "granularity": "day", "zone": "UTC"}),
                ("/v1/kpis", {**window, "journey": "abandoned-cart", "include": "customers"}),
                ("/v1/journeys", {}),
            ],
        ),
        "overview, 14 days by hour, Paris": (
            "/",
            {"since": since, "until": until, "granularity": "hour", "zone": "Europe/Paris"},
            [
                ("/v1/kpis/series", {**paris, "granularity": "hour", "zone": "Europe/Paris"}),
                ("/v1/kpis", {**paris, "include": "customers"}),
                ("/v1/journeys", {}),
            ],
        ),
        "journeys": ("/journeys", {}, [("/v1/journeys", {})]),
        "journey abandoned-cart (funnel)": (
            "/journeys/abandoned-cart",
            {},
            [("/v1/journeys/abandoned-cart/stats", {}), ("/v1/kpis", {"journey": "abandoned-cart"})],
        ),
        "messages, first page": ("/messages", {}, [("/v1/messages", {"limit": 100}), ("/v1/journeys", {})]),
        "messages, one template": (
            "/messages",
            {"template": "abandoned-cart-email"},
            [("/v1/messages", {"template": "abandoned-cart-email", "limit": 100}), ("/v1/journeys", {})],
        ),
        "messages, failed sms": (
            "/messages",
            {"status": "failed", "channel": "sms"},
            [("/v1/messages", {"status": "failed", "channel": "sms", "limit": 100}), ("/v1/journeys", {})],
        ),
        "conversations": ("/conversations", {}, [("/v1/conversations", {"limit": 100})]),
        "customers, search by e-mail": (
            "/customers",
            {"q": "user42@example.com"},
            [("/v1/customers", {"q": "user42@example.com", "limit": 50})],
        ),
        "customer profile": (
            "/customers/user-42",
            {},
            [
                ("/v1/customers/user-42", {}),
                ("/v1/customers/user-42/consents", {}),
                ("/v1/customers/user-42/timeline", {"limit": 200}),
            ],
        ),
        "reports": ("/reports", {}, [("/v1/reports", {})]),
        "segments": ("/segments", {}, [("/v1/segments", {})]),
        "segment: Black Friday audience": (f"/segments/{AUDIENCE}", {}, [(f"/v1/segments/{AUDIENCE}", {})]),
        # what the segment page asks for once shown: its conditions evaluated over every customer
        "segment: its live preview": (
            f"/segments/{AUDIENCE}/preview",
            {},
            [(f"/v1/segments/{AUDIENCE}/preview", {"limit": 20})],
        ),
        "broadcasts": ("/broadcasts", {}, [("/v1/broadcasts", {})]),
        "broadcast: sent, with KPIs": (
            f"/broadcasts/{SENT_BROADCAST}",
            {},
            [(f"/v1/broadcasts/{SENT_BROADCAST}", {})],
        ),
    }


AUDIENCE = "french-opted-in-buyers-this-year"  # segments/: the Black Friday audience
SENT_BROADCAST = "bench-sent"


def broadcast_body(broadcast_id: str, at: datetime, **fields) -> dict:
    return {
        "id": broadcast_id,
        "audience": {"segment": AUDIENCE},
        "channel": "sms",
        "template": "black-friday-sms",
        "vars": {"discount_code": "BENCH15"},
        "schedule": {"at": at.isoformat()},
        **fields,
    }


async def seed_audiences(runtime) -> dict[str, int]:
    """French opted-in customers, the shipped segments swept, and broadcasts in every state."""
    import sqlalchemy as sa

    from orchestrator.broadcasts.loader import from_body
    from orchestrator.broadcasts.sending import advance_broadcasts
    from orchestrator.broadcasts.service import act, create_draft
    from orchestrator.segments.refresh import refresh_segments

    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        for table in ("events", "enrollments", "messages"):  # generated with explicit ids: the service's come after
            await session.exec(
                sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            )
        await session.exec(
            sa.text(
                "UPDATE customers SET locale = 'fr', timezone = 'Europe/Paris', timezone_source = 'trait' WHERE id % 4 = 0"
            )
        )
        await session.exec(
            sa.text(
                "INSERT INTO consents (customer_id, channel, status, source, evidence, recorded_at) "
                "SELECT id, 'sms', 'opted_in', 'import', '{}', :at FROM customers WHERE id % 4 = 0"
            ),
            params={"at": now - timedelta(days=120)},
        )
        await session.exec(  # half of them ordered this year (the generated orders may all be older)
            sa.text(
                "INSERT INTO events (id, message_id, customer_id, type, name, properties, timestamp, received_at) "
                "SELECT (SELECT coalesce(max(id), 0) FROM events) + id, 'bench-order-fr-' || id, id, 'track', "
                "'Order Completed', '{\"revenue\": 80}', :at, :at FROM customers WHERE id % 8 = 0"
            ),
            params={"at": now - timedelta(days=30)},
        )
    await refresh_segments(runtime, sweep=True)
    async with runtime.sessions() as session, session.begin():
        await session.exec(  # a sweep an hour for 90 days before this one
            sa.text(
                "INSERT INTO segment_size_samples (segment_id, members, sampled_at) "
                "SELECT s.segment_id, greatest(0, s.members - h / 10), :at - h * interval '1 hour' "
                "FROM segment_size_samples s, generate_series(1, 2160) h"
            ),
            params={"at": now},
        )
    plans = [
        (SENT_BROADCAST, now - timedelta(days=1), ("schedule",)),
        ("bench-scheduled", now + timedelta(days=7), ("schedule",)),
        ("bench-paused", now + timedelta(days=14), ("schedule", "pause")),
        ("bench-cancelled", now + timedelta(days=21), ("cancel",)),
        ("bench-draft", now + timedelta(days=28), ()),
    ]
    for broadcast_id, at, actions in plans:
        loaded = from_body(broadcast_body(broadcast_id, at, holdout=0.05))
        async with runtime.sessions() as session, session.begin():
            await create_draft(session, loaded, now)
            for action in actions:
                await act(session, broadcast_id, action, now)
    while (await advance_broadcasts(runtime)).materialized:  # the snapshot, then its messages made
        pass
    async with runtime.sessions() as session, session.begin():
        await session.exec(
            sa.text(
                "UPDATE messages SET status = CASE WHEN id % 50 = 0 THEN 'failed' ELSE 'delivered' END, "
                "attempts = 1, sent_at = created_at, "
                "delivered_at = CASE WHEN id % 50 = 0 THEN NULL ELSE created_at + interval '5 seconds' END "
                "WHERE journey_id = :journey AND status = 'queued'"
            ),
            params={"journey": f"broadcast:{SENT_BROADCAST}"},
        )
    await advance_broadcasts(runtime)  # every message settled: done
    async with runtime.sessions() as session:
        members = (
            await session.exec(
                sa.text("SELECT count(*) FROM segment_members WHERE segment_id = :s"), params={"s": AUDIENCE}
            )
        ).scalar_one()
        state = (
            await session.exec(sa.text("SELECT state FROM broadcasts WHERE id = :b"), params={"b": SENT_BROADCAST})
        ).scalar_one()
    assert state == "done", state
    return {"audience_members": int(members)}


async def timed(call, repeat: int) -> dict:
    timings = []
    for attempt in range(repeat + 2):
        began = time.perf_counter()
        await call()
        if attempt >= 2:  # two warm-up calls: connections, caches, plans
            timings.append((time.perf_counter() - began) * 1000)
    return {
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 0.95), 1),
        "max_ms": round(max(timings), 1),
    }


async def time_pages(database_url: str, repeat: int) -> dict[str, dict]:
    import sqlalchemy as sa

    from orchestrator.auth.keys import create_key
    from orchestrator.kpis.rollup import rebuild_rollups

    runtime, app = await in_process_service(database_url, NOW, api_key_cache_seconds=60)
    results = {}
    try:
        seeded = await seed_audiences(runtime)
        print(
            f"  audiences: {seeded['audience_members']} members of {AUDIENCE}, one broadcast sent to them", flush=True
        )
        await rebuild_rollups(runtime)
        async with runtime.sessions() as session, session.begin():
            key = (await create_key(session, "bench", "admin", runtime.clock.now())).key
            # The audiences rewrote customers and added messages after the generator's ANALYZE;
            # autovacuum would re-analyze them in a deployment (it is off on this machine).
            await session.exec(sa.text("ANALYZE"))
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench") as browser,
            httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}
            ) as api,
        ):
            assert (await browser.post("/login", data={"key": key})).status_code == 303  # logged in
            for name, (path, params, calls) in pages().items():

                async def page(path=path, params=params):
                    response = await browser.get(path, params=params)
                    assert response.status_code == 200, (path, response.status_code, response.text[:300])

                async def direct(calls=calls):
                    for call_path, call_params in calls:
                        (await api.get(call_path, params=call_params)).raise_for_status()

                console = await timed(page, repeat)
                alone = await timed(direct, repeat)
                results[name] = {"path": path, "console": console, "api_calls": alone}
                print(
                    f"  {name:<32} console p50 {console['p50_ms']:>7.1f}  p95 {console['p95_ms']:>7.1f}  "
                    f"max {console['max_ms']:>7.1f} ms | its /v1 calls alone p95 {alone['p95_ms']:>7.1f} ms",
                    flush=True,
                )
    finally:
        await runtime.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--target-ms", type=float, default=300.0, help="p95 every page must stay under")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    with scratch_database("console", keep=args.keep) as database_url:
        print(f"generating {args.messages} messages", flush=True)
        generate(database_url, args.messages, args.conversions)
        print(f"console pages, {args.repeat} timed requests each (server time, in-process)", flush=True)
        results = asyncio.run(time_pages(database_url, args.repeat))
    worst = max(r["console"]["p95_ms"] for r in results.values())
    print(f"worst page p95 {worst} ms (target {args.target_ms:g} ms)")
    if not args.no_save:
        path = append_results("console", {"messages": args.messages, "repeat": args.repeat, "pages": results})
        print(f"results appended to {path.relative_to(REPO)}")
    return 0 if worst < args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
