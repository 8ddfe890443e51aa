"""Timer benchmark: a million enrollments whose wait ends within one minute.

    .venv/bin/python bench/timers.py [--enrollments 1000000] [--spread 60] [--next-step exit]
                                     [--workers 2] [--timeout 600]

On a PostgreSQL database created for the run (dropped at the end):

1. `orchestrator migrate`; a journey of the run's own, `timer-bench` (`wait: 1m`, then
   `exit`, or with `--next-step send` a transactional SMS through the `local` provider);
2. `--enrollments` customers and as many enrollments, written with COPY: every enrollment
   is active, on the step after the wait, and due at `T0 + spread * i / n`: the due times are
   spread evenly over `--spread` seconds from T0. T0 is chosen so the load is over by then;
   `ANALYZE` afterwards, as autovacuum would have done on a live database;
3. `--workers` `orchestrator worker` processes (default settings, so a 1 s poll interval),
   started 2 s before T0;
4. until every enrollment has ended (or `--timeout`): progress and worker RSS sampled every
   2 s. Then, in SQL, the lag of each enrollment: `ended_at - due_at` (or, with `send`,
   the message's `sent_at - due_at`), its p50/p99/max, and throughput (enrollments per
   second from T0 until the last one ended, and the best 10-second window).

If the run does not finish within `--timeout`, what was processed is reported and the time
for all of them is extrapolated from the throughput, clearly labelled as such.

Results: a table on stdout, appended to bench/results/timers-<date>.json.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    REPO,
    Processes,
    append_results,
    backend_pids,
    cpu_delta,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    migrate,
    python_env,
    rss_bytes,
    scratch_database,
)

JOURNEY = """id: timer-bench
name: Timer benchmark
trigger:
  event: Timer Bench
quiet_hours: off
steps:
  - id: pause
    wait: 1m
{next_step}
"""
NEXT_STEPS = {
    "exit": ("done", "  - id: done\n    exit: timer elapsed"),
    "send": (
        "ping",
        "  - id: ping\n    send:\n      channel: sms\n      template: abandoned-cart-sms\n"
        "      transactional: true\n      vars:\n        discount_percent: 15\n"
        "        discount_code: TIMER",
    ),
}
COPY_CHUNK = 100_000


def write_journey(workdir: Path, next_step: str) -> tuple[Path, str, str]:
    folder = workdir / "journeys"
    folder.mkdir(exist_ok=True)
    cursor, step = NEXT_STEPS[next_step]
    (folder / "timer-bench.yaml").write_text(JOURNEY.format(next_step=step))
    from orchestrator.journeys.loader import load_directory

    report = load_directory(folder)
    if report.errors or len(report.loaded) != 1:
        raise RuntimeError(f"timer journey did not load: {report.errors}")
    return folder, report.loaded[0].version, cursor


def copy_rows(connection, statement: str, rows) -> None:
    with connection.cursor().copy(statement) as copy:
        buffer = io.StringIO()
        for count, row in enumerate(rows, 1):
            buffer.write(row)
            if count % COPY_CHUNK == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def load(database_url: str, n: int, version: str, cursor: str, spread: float, lead: float) -> tuple[datetime, dict]:
    """Customers and enrollments by COPY; returns T0 (the first due time) and timings."""
    import psycopg

    timings = {}
    with psycopg.connect(database_url, autocommit=True) as connection:
        started = time.monotonic()
        now = datetime.now(timezone.utc).isoformat()
        copy_rows(
            connection,
            "COPY customers (id, user_id, phone, traits, created_at, updated_at) FROM STDIN",
            (f"{i}\tt{i}\t+1415{i:07d}\t{{}}\t{now}\t{now}\n" for i in range(1, n + 1)),
        )
        timings["customers_copy_seconds"] = round(time.monotonic() - started, 1)
        # Enrollments take about twice as long as customers (more indexes): due times start after that.
        t0 = datetime.now(timezone.utc) + timedelta(seconds=lead + 2.5 * timings["customers_copy_seconds"])
        entered = (t0 - timedelta(minutes=1)).isoformat()
        step = spread / n
        started = time.monotonic()
        copy_rows(
            connection,
            "COPY enrollments (id, journey_id, journey_version, customer_id, status, cursor, due_at, entered_at,"
            " context, holdout) FROM STDIN",
            (
                f"{i}\ttimer-bench\t{version}\t{i}\tactive\t{cursor}\t"
                f"{(t0 + timedelta(seconds=(i - 1) * step)).isoformat()}\t{entered}\t{{}}\tf\n"
                for i in range(1, n + 1)
            ),
        )
        timings["enrollments_copy_seconds"] = round(time.monotonic() - started, 1)
        connection.execute("SELECT setval('customers_id_seq', %s)", (n,))
        connection.execute("SELECT setval('enrollments_id_seq', %s)", (n,))
        started = time.monotonic()
        connection.execute("ANALYZE customers")
        connection.execute("ANALYZE enrollments")
        timings["analyze_seconds"] = round(time.monotonic() - started, 1)
    return t0, timings


def measure(database_url: str, n: int, t0: datetime, spread: float, next_step: str) -> dict:
    """Lag and throughput, computed in PostgreSQL from the rows the workers wrote."""
    import psycopg

    due = "(%(t0)s::timestamptz + (e.id - 1) * %(step)s * interval '1 second')"
    done = "m.sent_at" if next_step == "send" else "e.ended_at"
    source = (
        "enrollments e JOIN messages m ON m.enrollment_id = e.id AND m.status = 'sent'"
        if next_step == "send"
        else "enrollments e"
    )
    where = "" if next_step == "send" else "WHERE e.status <> 'active'"
    params = {"t0": t0, "step": spread / n}
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            f"""
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {done} - {due})),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM {done} - {due})),
                   max(extract(epoch FROM {done} - {due})),
                   min(extract(epoch FROM {done} - {due})),
                   extract(epoch FROM max({done}) - %(t0)s::timestamptz),
                   extract(epoch FROM max({done}) - min({done}))
            FROM {source} {where}""",
            params,
        ).fetchone()
        best = connection.execute(
            f"""
            SELECT coalesce(max(c), 0) FROM (
                SELECT count(*) AS c FROM {source} {where}
                GROUP BY floor(extract(epoch FROM {done} - %(t0)s::timestamptz) / 10)) w""",
            params,
        ).fetchone()[0]
        statuses = dict(connection.execute("SELECT status, count(*) FROM enrollments GROUP BY status").fetchall())
    processed, p50, p99, worst, earliest, last_after_t0, processing_span = row
    result = {
        "processed": processed,
        "enrollment_statuses": statuses,
        "lag_p50_seconds": round(p50, 2) if p50 is not None else None,
        "lag_p99_seconds": round(p99, 2) if p99 is not None else None,
        "lag_max_seconds": round(worst, 2) if worst is not None else None,
        "lag_min_seconds": round(earliest, 3) if earliest is not None else None,
        "last_processed_seconds_after_t0": round(last_after_t0, 1) if last_after_t0 is not None else None,
        "throughput_per_second": round(processed / last_after_t0, 1) if last_after_t0 else None,
        "best_10s_window_per_second": round(best / 10, 1),
    }
    if processed and processed < n and last_after_t0:
        result["extrapolated_seconds_for_all"] = round(n / (processed / last_after_t0), 0)
    return result


def run(args, workdir: Path) -> dict:
    with scratch_database("timers", keep=args.keep_database) as database_url:
        migrate(database_url, workdir / "migrate.log")
        journeys, version, cursor = write_journey(workdir, args.next_step)
        t0, timings = load(database_url, args.enrollments, version, cursor, args.spread, lead=10.0)
        wait = (t0 - datetime.now(timezone.utc)).total_seconds() - 2.0
        late_start = max(0.0, -wait)
        if wait > 0:
            time.sleep(wait)
        env = python_env(
            DATABASE_URL=database_url,
            ORCHESTRATOR_AUTO_MIGRATE="false",
            ORCHESTRATOR_JOURNEYS_DIR=str(journeys),
            ORCHESTRATOR_SMS_PROVIDER="local",
            ORCHESTRATOR_EMAIL_PROVIDER="local",
            ORCHESTRATOR_WHATSAPP_PROVIDER="local",
        )
        processes = Processes()
        samples = []
        timed_out = False
        try:
            workers = [
                processes.spawn(
                    [sys.executable, "-m", "orchestrator.cli", "worker"], env=env, log=workdir / f"worker-{i}.log"
                )
                for i in range(args.workers)
            ]
            started = time.monotonic()
            worker_pids = [p for w in workers for p in descendants(w.pid)]
            cpu_before = cpu_seconds(worker_pids), machine_busy_seconds()
            db_pids: set[int] = set()
            db_cpu: dict[int, float] = {}
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as connection:
                while True:
                    time.sleep(2.0)
                    remaining = connection.execute(
                        "SELECT count(*) FROM enrollments WHERE status = 'active'"
                    ).fetchone()[0]
                    if args.next_step == "send":
                        remaining += connection.execute(
                            "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')"
                        ).fetchone()[0]
                    db_pids |= set(backend_pids(database_url))
                    db_cpu.update(cpu_seconds(sorted(db_pids)))
                    rss = [round(rss_bytes(w.pid) / 2**20, 1) for w in workers]
                    samples.append((round(time.monotonic() - started, 1), args.enrollments - remaining, rss))
                    if any(w.poll() is not None for w in workers):
                        raise RuntimeError("a worker exited:\n" + (workdir / "worker-0.log").read_text()[-3000:])
                    if remaining == 0:
                        break
                    if time.monotonic() - started > args.timeout:
                        timed_out = True
                        break
            worker_cpu = cpu_delta(cpu_before[0], cpu_seconds(worker_pids))
            busy = machine_busy_seconds() - cpu_before[1]
            wall = time.monotonic() - started
        finally:
            processes.stop_all()
        result = measure(database_url, args.enrollments, t0, args.spread, args.next_step)
    processed = max(result["processed"], 1)
    result.update(
        enrollments=args.enrollments,
        spread_seconds=args.spread,
        next_step=args.next_step,
        workers=args.workers,
        load=timings,
        workers_started_late_seconds=round(late_start, 1),
        timed_out=timed_out,
        wall_seconds=round(wall, 1),
        cpu_ms_per_enrollment={
            "workers": round(1000 * worker_cpu / processed, 3),
            "postgres_backends": round(1000 * sum(db_cpu.values()) / processed, 3),
            "machine (everything)": round(1000 * busy / processed, 3),
        },
        worker_rss_mib={
            "first": samples[0][2] if samples else None,
            "last": samples[-1][2] if samples else None,
            "peak": [max(s[2][i] for s in samples) for i in range(args.workers)] if samples else None,
        },
        progress_samples=samples[:: max(1, len(samples) // 40)],
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--spread", type=float, default=60.0, help="due times spread over this many seconds")
    parser.add_argument("--next-step", choices=sorted(NEXT_STEPS), default="exit")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds of processing before giving up")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-timers-") as tmp:
        workdir = Path(tmp)
        try:
            result = run(args, workdir)
        except BaseException:
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
    r = result
    print(
        f"{r['enrollments']:,} enrollments due over {r['spread_seconds']:.0f} s, next step {r['next_step']}, "
        f"{r['workers']} workers: processed {r['processed']:,}{' (TIMED OUT)' if r['timed_out'] else ''}; "
        f"lag p50 {r['lag_p50_seconds']} s, p99 {r['lag_p99_seconds']} s, max {r['lag_max_seconds']} s; "
        f"{r['throughput_per_second']} /s overall (best 10 s: {r['best_10s_window_per_second']} /s); "
        f"last one {r['last_processed_seconds_after_t0']} s after the first was due"
    )
    if "extrapolated_seconds_for_all" in r:
        print(
            f"EXTRAPOLATED: all {r['enrollments']:,} would take ~{r['extrapolated_seconds_for_all']:.0f} s at that rate"
        )
    print(
        f"load {r['load']}, workers started {r['workers_started_late_seconds']} s late; CPU ms per enrollment "
        f"{r['cpu_ms_per_enrollment']}; worker RSS MiB {r['worker_rss_mib']}"
    )
    if not args.no_save:
        path = append_results("timers", result)
        print(f"results appended to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
