"""Broadcast benchmark: one SMS broadcast to N customers on PostgreSQL against the fake
Twilio, next to the dispatch ceiling measured in the same run.

    .venv/bin/python bench/broadcast.py [--customers 1000000] [--ceiling-messages 20000] [--workers 2]

Set-up (not timed): a database of the run's own (`orchestrator migrate`); N customers with a
French number, `locale: fr`, `timezone: Europe/Paris` and an SMS opt-in, all members of one
segment, written with `INSERT … SELECT generate_series` and ANALYZEd; the fake Twilio in
its own process (bench/end_to_end.py's `FakeTwilio`: no latency, no status callbacks, its
witness log is the ground truth).

1. Dispatch ceiling: `--ceiling-messages` plain queued SMS (no journey, no broadcast) sent by
   `--workers` `orchestrator worker` processes: SMS/s from the workers' start to the fake's
   last accept. What the same workers and fake can do when nothing but dispatch runs.
   Also the CPU it took per SMS from the first SMS on: the workers' process trees and their
   PostgreSQL backends (not the fake), read from /proc; other load on the machine moves
   it far less than it moves the rate.
2. The broadcast (`audience: {segment: …}`, `at:` now), scheduled through the service code:
   - snapshot: the time `start_due_broadcasts` takes (the state move and the one
     `INSERT … SELECT` of N recipients), measured in this process;
   - then the same workers feed it (recipients → enrollments + messages, batches of
     `ORCHESTRATOR_BROADCAST_BATCH_SIZE`) and send it: SMS/s from their start to the fake's
     last accept, against the ceiling; CPU per SMS as for the ceiling; worker RSS (each
     worker's process tree) when 10 % and 100 % of the SMS had been accepted; duplicates
     and losses by phone number.

PostgreSQL's autovacuum is on for the run, as on any production server (this machine's
server runs with it off; `bench.harness.production_autovacuum` turns it on and back off):
without it, a send of a million plans every statement on the statistics of its set-up.

Results: a table on stdout, appended to bench/results/broadcast-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))

from bench.end_to_end import RECONCILE_AFTER_SECONDS, RECONCILE_RESEND_AFTER_SECONDS, FakeTwilio  # noqa: E402
from bench.harness import (  # noqa: E402
    POSTGRES_ADMIN_URL,
    Processes,
    append_results,
    backend_pids,
    cpu_delta,
    cpu_seconds,
    descendants,
    migrate,
    production_autovacuum,
    python_env,
    rss_bytes,
    scratch_database,
    stop_group,
)

SEGMENT = "bench-audience"
BROADCAST = "bench-broadcast"
PHONE_BASE = 33610000000  # +33 6 10 00 00 00 onwards: French mobiles, outside the fake's magic numbers
POLL_SECONDS = 0.25
RUN_TIMEOUT_SECONDS = 3600


def phone_sql(column: str) -> str:
    return f"'+' || ({PHONE_BASE} + {column})::text"


def prepare(database_url: str, customers: int) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO customers (user_id, phone, locale, timezone, timezone_source, traits, created_at, updated_at) "
            f"SELECT 'fr' || g, {phone_sql('g')}, 'fr', 'Europe/Paris', 'trait', '{{}}', now(), now() "
            "FROM generate_series(1, %s) AS g",
            (customers,),
        )
        connection.execute(
            "INSERT INTO consents (customer_id, channel, status, source, evidence, recorded_at) "
            "SELECT id, 'sms', 'opted_in', 'import', '{}', now() FROM customers"
        )
        connection.execute(
            "INSERT INTO segment_members (segment_id, customer_id, entered_at) SELECT %s, id, now() FROM customers",
            (SEGMENT,),
        )
        connection.execute("ANALYZE")


def queue_plain_messages(database_url: str, count: int) -> None:
    """Journey-less queued SMS to the first `count` customers: what dispatch alone can do."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO messages (send_key, customer_id, channel, provider, to_address, body, template_metadata, "
            "marketing, status, attempts, next_attempt_at, created_at, updated_at) "
            "SELECT 'plain:' || id, id, 'sms', 'twilio', phone, 'Plain dispatch benchmark message', '{}', false, "
            "'queued', 0, now(), now(), now() FROM customers ORDER BY id LIMIT %s",
            (count,),
        )
        connection.execute("ANALYZE messages")


async def schedule_and_snapshot(database_url: str) -> tuple[float, int]:
    """Create and schedule the broadcast through the service code, then take its snapshot
    as a worker would: (seconds, recipients)."""
    from orchestrator.broadcasts.loader import from_body
    from orchestrator.broadcasts.sending import start_due_broadcasts
    from orchestrator.broadcasts.service import act, create_draft
    from orchestrator.clock import Clock
    from orchestrator.config import Settings
    from orchestrator.startup import build_runtime
    from orchestrator.storage.broadcast_models import Broadcast

    settings = Settings(database_url=database_url, auto_migrate=False, sms_provider="local", email_provider="local")
    runtime = await build_runtime(settings, clock=Clock())
    try:
        now = runtime.clock.now()
        loaded = from_body(
            {
                "id": BROADCAST,
                "audience": {"segment": SEGMENT},
                "channel": "sms",
                "template": "black-friday-sms",
                "vars": {"discount_code": "BENCH15"},
                "schedule": {"at": now.isoformat()},
            }
        )
        async with runtime.sessions() as session, session.begin():
            await create_draft(session, loaded, now)
            await act(session, BROADCAST, "schedule", now)
        started = time.perf_counter()
        await start_due_broadcasts(runtime)
        elapsed = time.perf_counter() - started
        async with runtime.sessions() as session:
            recipients = (await session.get(Broadcast, BROADCAST)).recipients
        return elapsed, recipients
    finally:
        await runtime.aclose()


def run_workers(
    processes: Processes, env: dict, workers: int, twilio: FakeTwilio, expected: int, workdir: Path, tag: str
):
    """Start the workers, wait until the fake accepted `expected` more SMS; SMS/s, CPU and RSS."""
    import psycopg

    before = twilio.poll()
    milestones = [(1, "first"), *((max(1, round(expected * f)), f"{int(f * 100)}%") for f in (0.1, 1.0))]
    rss_at: dict[str, list[float]] = {}
    reached: dict[str, float] = {}
    cpu_at: dict[str, dict[str, dict[int, float]]] = {}  # CPU seconds of the workers and their backends
    backends: list[int] = []
    admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
    started = time.time()
    running = [
        processes.spawn([sys.executable, "-m", "orchestrator.cli", "worker"], env, workdir / f"{tag}-worker-{n}.log")
        for n in range(workers)
    ]
    try:
        while True:
            time.sleep(POLL_SECONDS)
            done = twilio.poll() - before
            trees = [descendants(w.pid) for w in running]
            rss = [round(sum(rss_bytes(p) for p in tree) / 2**20, 1) for tree in trees]
            # Every poll: pools open (and close) connections as they need them.
            backends = sorted(set(backends) | set(backend_pids(env["DATABASE_URL"], admin)))
            cpu = {
                "workers": cpu_seconds([p for tree in trees for p in tree]),
                "database": cpu_seconds(backends),
            }
            for threshold, label in milestones:
                if done >= threshold and label not in rss_at:
                    rss_at[label], reached[label], cpu_at[label] = rss, time.time(), cpu
            if done >= expected:
                break
            if time.time() - started > RUN_TIMEOUT_SECONDS:
                raise RuntimeError(f"{tag}: {done} of {expected} SMS after {RUN_TIMEOUT_SECONDS} s")
    finally:
        admin.close()
        for worker in running:
            stop_group(worker)
    last = twilio.last_accept_time() or time.time()
    elapsed = last - started
    # From 10 % to the end: the rate once the workers are up (start-up and imports excluded).
    steady_sms = expected - max(1, round(expected * 0.1))
    steady = steady_sms / max(last - reached["10%"], 1e-6)
    # CPU from the first SMS on (start-up and imports excluded, a broadcast's first batches
    # included): less at the mercy of the machine's other load than the rate is.
    spent = {part: cpu_delta(cpu_at["first"][part], cpu_at["100%"][part]) for part in ("workers", "database")}
    return {
        "sms": expected,
        "seconds": round(elapsed, 1),
        "sms_per_second": round(expected / elapsed, 1),
        "steady_sms_per_second": round(steady, 1),
        "cpu_ms_per_sms": round(1000 * sum(spent.values()) / max(expected - 1, 1), 3),
        **{
            f"{part}_cpu_ms_per_sms": round(1000 * seconds / max(expected - 1, 1), 3) for part, seconds in spent.items()
        },
        "rss_mib": rss_at,
    }


def cpu_split(run: dict) -> str:
    return f"workers {run['workers_cpu_ms_per_sms']:.2f}, their backends {run['database_cpu_ms_per_sms']:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--ceiling-messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--snapshot-only", action="store_true", help="set up and take the snapshot, send nothing (for a large N)"
    )
    args = parser.parse_args(argv)
    ceiling_messages = min(args.ceiling_messages, args.customers)
    processes = Processes()
    with (
        production_autovacuum() as autovacuum_was_on,
        tempfile.TemporaryDirectory(prefix="bench-broadcast-") as scratch,
        scratch_database("broadcast") as url,
    ):
        workdir = Path(scratch)
        migrate(url, workdir / "migrate.log")
        t = time.perf_counter()
        prepare(url, args.customers)
        print(f"{args.customers:,} customers, opted in, in the segment: {time.perf_counter() - t:.1f} s (set-up)")
        twilio = FakeTwilio(workdir, "broadcast")
        env = python_env(
            DATABASE_URL=url,
            ORCHESTRATOR_AUTO_MIGRATE="false",
            ORCHESTRATOR_SMS_PROVIDER="twilio",
            ORCHESTRATOR_TWILIO_API_BASE_URL=twilio.url,
            ORCHESTRATOR_FAKE_TWILIO_AUTH_TOKEN=twilio.auth_token,
            ORCHESTRATOR_WHATSAPP_PROVIDER="local",
            ORCHESTRATOR_EMAIL_PROVIDER="local",
            ORCHESTRATOR_PUBLIC_BASE_URL="http://127.0.0.1:9",
            # As bench/end_to_end.py: a send whose answer the loaded fake dropped is settled within
            # the run (asked about after 15 s, resent after 30 s if the fake never got it).
            ORCHESTRATOR_RECONCILE_AFTER_SECONDS=str(RECONCILE_AFTER_SECONDS),
            ORCHESTRATOR_RECONCILE_RESEND_AFTER_SECONDS=str(RECONCILE_RESEND_AFTER_SECONDS),
            ORCHESTRATOR_REPORTS_DIR=str(workdir / "no-reports"),
            ORCHESTRATOR_BROADCASTS_DIR=str(workdir / "no-broadcast-files"),
            # The audience is written by the set-up; no segment file may re-evaluate it.
            ORCHESTRATOR_SEGMENTS_DIR=str(workdir / "no-segment-files"),
        )
        if args.snapshot_only:
            twilio.stop()
            snapshot_seconds, recipients = asyncio.run(schedule_and_snapshot(url))
            print(f"snapshot: {recipients:,} recipients in {snapshot_seconds:.2f} s")
            path = append_results(
                "broadcast",
                {"customers": args.customers, "snapshot_seconds": round(snapshot_seconds, 2), "recipients": recipients},
            )
            print(f"results appended to {path.relative_to(BENCH_DIR.parent)}")
            return 0
        try:
            queue_plain_messages(url, ceiling_messages)
            ceiling = run_workers(processes, env, args.workers, twilio, ceiling_messages, workdir, "ceiling")
            print(
                f"dispatch ceiling: {ceiling['sms_per_second']:,.0f} SMS/s, {ceiling['steady_sms_per_second']:,.0f} "
                f"from 10 % on ({ceiling_messages:,} plain messages); "
                f"{ceiling['cpu_ms_per_sms']:.2f} CPU ms per SMS ({cpu_split(ceiling)})"
            )
            snapshot_seconds, recipients = asyncio.run(schedule_and_snapshot(url))
            print(f"snapshot: {recipients:,} recipients in {snapshot_seconds:.2f} s")
            broadcast = run_workers(processes, env, args.workers, twilio, recipients, workdir, "broadcast")
            print(
                f"broadcast: {broadcast['sms_per_second']:,.0f} SMS/s, {broadcast['steady_sms_per_second']:,.0f} from "
                f"10 % on ({100 * broadcast['steady_sms_per_second'] / ceiling['steady_sms_per_second']:.0f} % of "
                "the ceiling's), "
                f"{broadcast['seconds']:,.0f} s; {broadcast['cpu_ms_per_sms']:.2f} CPU ms per SMS "
                f"({cpu_split(broadcast)}; "
                f"{broadcast['cpu_ms_per_sms'] / ceiling['cpu_ms_per_sms']:.2f} times the ceiling's); "
                f"worker RSS MiB {broadcast['rss_mib']}"
            )
        finally:
            processes.stop_all()
            twilio.stop()
        received = Counter(entry["to"] for entry in twilio.witnessed())
        broadcast_phones = {f"+{PHONE_BASE + n}" for n in range(1, args.customers + 1)}
        plain = {f"+{PHONE_BASE + n}" for n in range(1, ceiling_messages + 1)}
        expected = Counter({phone: 1 + (phone in plain) for phone in broadcast_phones})
        duplicates = sum(1 for phone, n in received.items() if n > expected[phone])
        lost = sum(1 for phone in broadcast_phones if received[phone] < expected[phone])
        print(f"witness: {sum(received.values()):,} SMS; duplicates {duplicates}, lost {lost}")
    path = append_results(
        "broadcast",
        {
            "customers": args.customers,
            "workers": args.workers,
            "autovacuum": "on" if autovacuum_was_on else "on for the run (the server's is off)",
            "snapshot_seconds": round(snapshot_seconds, 2),
            "recipients": recipients,
            "ceiling": ceiling,
            "broadcast": broadcast,
            "broadcast_vs_ceiling": round(broadcast["steady_sms_per_second"] / ceiling["steady_sms_per_second"], 3),
            "cpu_per_sms_vs_ceiling": round(broadcast["cpu_ms_per_sms"] / ceiling["cpu_ms_per_sms"], 3),
            "duplicates": duplicates,
            "lost": lost,
        },
    )
    print(f"results appended to {path.relative_to(BENCH_DIR.parent)}")
    return 0 if duplicates == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
