"""End-to-end benchmark: customers through the abandoned-cart journey (event, 1-hour wait,
check for an order, SMS), ours against the Celery program a user would otherwise write.

    .venv/bin/python bench/end_to_end.py [--customers 20000] [--chaos-customers 10000]
        [--systems ours,ours-no-reconcile,celery,celery-acks-late] [--kills 6] [--kill-interval 3]
        [--celery-concurrency 4] [--order-every 10]

Both systems run on the same PostgreSQL, with 2 worker processes each, against the same
fake Twilio started in its own process for every run
(`python -m orchestrator.fakes.twilio --status-latency 0 --no-status-callbacks --log-path F`):
its witness log (one JSON line per accepted message) is the ground truth.

Set-up (not timed): a database of the run's own; `--customers` customers identified with a
phone and `sms_opt_in`, each sending `Cart Abandoned`; every `--order-every`-th customer then
sends `Order Completed` half an hour later, so that one must NOT be texted. The events go
through `orchestrator.events.ingest` with a SimulatedClock set two hours in the past: the
one-hour wait (simulated time) is already over, so all the work is due when the workers
start. The database is then ANALYZEd, as autovacuum would have done in those two hours
(this server runs with `autovacuum = off`). The journey is `journeys/abandoned-cart.yaml`, alone in a journeys folder of the run,
with `quiet_hours: off` (the Celery program has no quiet hours either).

- ours: two `orchestrator worker` processes (default settings; SMS through the Twilio
  adapter to the fake), with the reconcile window shortened so sends cut off by a kill are
  settled within the run instead of after the default five and ten minutes: asked about
  after `ORCHESTRATOR_RECONCILE_AFTER_SECONDS=15`, resent if the fake never got them after
  `ORCHESTRATOR_RECONCILE_RESEND_AFTER_SECONDS=30` (docs/send-safety.md). The reconcile job
  runs at its default interval, so the clean run pays what a deployment pays for it. The
  shipped frequency caps apply (one SMS per customer here, so none is capped, but every send
  takes its slots); `--frequency-caps off` runs without them (docs/frequency-caps.md).
  In the chaos run the reconciler also fetches the status of every SMS still `sent`
  `ORCHESTRATOR_RECONCILE_STATUS_AFTER_SECONDS=20` after it left (the fake posts no status
  callbacks, so that is the only way any SMS leaves `sent`), and the run waits for it.
- ours-no-reconcile (clean run only): the same, with the reconcile job never running, so
  the clean runs of the two show what the reconciler costs in throughput.
- celery: bench/celery_baseline.py, RabbitMQ broker; for every `Cart Abandoned` event the
  "web app" called `apply_async(..., countdown=3600)` when the cart was abandoned, i.e. two
  hours ago: the task's ETA passed an hour ago, as the journey's wait did. The tasks are
  published before the workers start, as our events were ingested before ours start. Two
  `celery worker` processes with `--concurrency` (default 4: prefork children per worker;
  the task is I/O-bound, see bench/results/HISTORY.md). `celery` uses Celery's defaults (early acks);
  `celery-acks-late` adds `task_acks_late=True` + `task_reject_on_worker_lost=True`.

Two runs per system, each on fresh data:

1. clean (`--customers`): customers per second, from the moment the worker processes are
   started to the moment the fake accepted the last SMS (the witness log's mtime); the RSS
   of each worker process (and its pool children) sampled every 0.5 s, reported when 10%,
   50% and 100% of the SMS had been accepted, and at its peak;
2. chaos (`--chaos-customers`): the same, with a worker SIGKILLed (its whole process group)
   every `--kill-interval` seconds, `--kills` times, alternating between the two, each one
   restarted at once. After everything settles: duplicates (a phone in the witness log more
   than once), losses (a customer who should have been texted and was not), wrong sends (a
   customer who ordered and was texted anyway), and for ours the `unknown` messages left
   once the reconcile window has passed (cut off between the claim and the provider's
   answer, and not settled by asking the fake: expected 0), split into those the fake did
   and did not receive, the SMS still `sent` (no status: expected 0), how many sends the
   reconciler found at the fake and how many it queued again (`messages.requeues`). For
   Celery these are n/a: it has neither state.

Every process is started in its own process group and stopped in a `finally`; the
databases are dropped and the RabbitMQ queues deleted. Results: a table on stdout, appended
to bench/results/end_to_end-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    HOST,
    REPO,
    Processes,
    append_results,
    backend_pids,
    cpu_seconds,
    descendants,
    free_port,
    kill_group,
    machine_busy_seconds,
    migrate,
    python_env,
    rss_bytes,
    scratch_database,
    spawn,
    stop_group,
    wait_for_http,
)

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
RUN_TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 0.5
SETTLE_SECONDS = 5.0  # nothing new at the fake for this long, and nothing left to do: settled
CHAOS_SETTLE_SECONDS = 15.0  # after kills, give restarted workers time to come up and redo work
RECONCILE_AFTER_SECONDS = 15
RECONCILE_RESEND_AFTER_SECONDS = 30
# Chaos runs: the fake posts no status callbacks, so every SMS is `sent` until the
# reconciler fetches its status; shortened (and sped up) so that happens within the run.
RECONCILE_STATUS_AFTER_SECONDS = 20
RECONCILE_LOOKUPS_PER_SECOND = 500
RECONCILE_BATCH_SIZE = 500
NO_RECONCILE_INTERVAL_SECONDS = 86_400  # `ours-no-reconcile`: the first round would come after a day
SYSTEMS = ("ours", "ours-no-reconcile", "celery", "celery-acks-late")
PHONE_BASE = 14155000000  # +1 415 5xx xxxx: plain numbers, outside the fake's magic +1500555xxxx range


def phone_of(i: int) -> str:
    return f"+{PHONE_BASE + i}"


# --------------------------------------------------------------------------------- set-up


def journeys_folder(workdir: Path) -> Path:
    folder = workdir / "journeys"
    folder.mkdir(exist_ok=True)
    source = (REPO / "journeys" / "abandoned-cart.yaml").read_text()
    (folder / "abandoned-cart.yaml").write_text(source.rstrip() + "\nquiet_hours: off\n")
    return folder


def settings_for(database_url: str, journeys: Path, **extra):
    from orchestrator.config import Settings

    return Settings(
        database_url=database_url,
        journeys_dir=journeys,
        templates_dir=REPO / "templates",
        auto_migrate=False,
        simulated_clock=True,
        email_provider="local",
        sms_provider="local",
        whatsapp_provider="local",
        **extra,
    )


async def ingest_customers(
    database_url: str, journeys: Path, first: int, last: int, order_every: int, start: datetime
) -> None:
    """Customers [first, last): identify + Cart Abandoned at `start`, an order 30 min later
    for every `order_every`-th one; through the real ingest path, on a simulated clock."""
    from orchestrator.clock import SimulatedClock
    from orchestrator.events.ingest import ingest
    from orchestrator.events.schemas import IdentifyCall, TrackCall
    from orchestrator.startup import build_runtime

    clock = SimulatedClock(start)
    runtime = await build_runtime(settings_for(database_url, journeys), clock=clock)
    try:
        for low in range(first, last, 500):
            calls = []
            for i in range(low, min(low + 500, last)):
                calls.append(
                    IdentifyCall(userId=f"c{i}", traits={"phone": phone_of(i), "sms_opt_in": True, "locale": "en"})
                )
                calls.append(
                    TrackCall(
                        userId=f"c{i}", event="Cart Abandoned", messageId=f"cart-{i}", properties={"cart_value": 80}
                    )
                )
            async with runtime.sessions() as session, session.begin():
                await ingest(session, runtime, calls)
        clock.advance(timedelta(minutes=30))
        orders = [
            TrackCall(
                userId=f"c{i}",
                event="Order Completed",
                messageId=f"order-{i}",
                properties={"order_id": f"o{i}", "revenue": 80},
            )
            for i in range(first, last)
            if i % order_every == 0
        ]
        for low in range(0, len(orders), 1000):
            async with runtime.sessions() as session, session.begin():
                await ingest(session, runtime, orders[low : low + 1000])
    finally:
        await runtime.aclose()


def prepare_database(database_url: str, customers: int, order_every: int, workdir: Path) -> dict:
    """Migrate, then ingest in two processes (one per core); returns what is expected."""
    migrate(database_url, workdir / "migrate.log")
    journeys = journeys_folder(workdir)
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    # Journey versions are published once here, so the two ingesting processes do not race on it.
    asyncio.run(ingest_customers(database_url, journeys, 0, 0, order_every, start))
    started = time.monotonic()
    halves = [(0, customers // 2), (customers // 2, customers)]
    processes = Processes()
    try:
        children = [
            processes.spawn(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "_ingest",
                    database_url,
                    str(journeys),
                    str(low),
                    str(high),
                    str(order_every),
                    start.isoformat(),
                ],
                env=python_env(),
                log=workdir / "ingest.log",
            )
            for low, high in halves
        ]
        for child in children:
            if child.wait(timeout=1800) != 0:
                raise RuntimeError("ingest failed:\n" + (workdir / "ingest.log").read_text()[-3000:])
    finally:
        processes.stop_all()
    # The events are two hours old: a live database's autovacuum would have analyzed these
    # tables long since. This server runs with autovacuum off, so do what it would have done;
    # without statistics PostgreSQL plans sequential scans of events and consents.
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("ANALYZE")
    ordered = {i for i in range(customers) if i % order_every == 0}
    return {
        "customers": customers,
        "ordered": len(ordered),
        "expected_sms": customers - len(ordered),
        "ingest_seconds": round(time.monotonic() - started, 1),
        "abandoned_at": start.isoformat(),
        "journeys": str(journeys),
    }


def ingest_main(argv: list[str]) -> int:
    database_url, journeys, first, last, order_every, start = argv
    asyncio.run(
        ingest_customers(
            database_url, Path(journeys), int(first), int(last), int(order_every), datetime.fromisoformat(start)
        )
    )
    return 0


# ------------------------------------------------------------------------- the fake Twilio


class FakeTwilio:
    def __init__(self, workdir: Path, tag: str) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / f"twilio-{tag}.jsonl"
        # Random per run (the fake has no public default): every system under test is given it.
        self.auth_token = secrets.token_hex(16)
        self.process = spawn(
            [
                sys.executable,
                "-m",
                "orchestrator.fakes.twilio",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--status-latency",
                "0",
                "--no-status-callbacks",
                "--log-path",
                str(self.log_path),
                "--auth-token",
                self.auth_token,
            ],
            env=python_env(),
            log=workdir / f"twilio-{tag}.log",
        )
        wait_for_http(self.url + "/_admin/messages", process=self.process)
        self._offset = 0
        self.count = 0

    def poll(self) -> int:
        """Lines appended since the last call (read incrementally; a line is one accepted SMS)."""
        if self.log_path.exists():
            with self.log_path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            self.count += chunk[:complete].count(b"\n")
        return self.count

    def last_accept_time(self) -> float | None:
        """Wall-clock time of the last accepted SMS: the log is appended and flushed per message."""
        return self.log_path.stat().st_mtime if self.log_path.exists() else None

    def witnessed(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def cpu_seconds(self) -> float:
        from bench.harness import cpu_seconds

        return sum(cpu_seconds([self.process.pid]).values())

    def stop(self) -> None:
        stop_group(self.process)


# ------------------------------------------------------------------------------ CPU accounting


class CpuTracker:
    """CPU seconds per group of processes over a run: processes that exist at the first
    sample count from there, processes born later count in full (PostgreSQL backends,
    restarted workers). A process killed between two samples loses its last interval."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group_of: dict[int, str] = {}
        self.started = False
        self.busy_start = machine_busy_seconds()

    def sample(self, groups: dict[str, list[int]]) -> None:
        for group, pids in groups.items():
            for pid, value in cpu_seconds(pids).items():
                self.group_of.setdefault(pid, group)
                if pid not in self.first:
                    self.first[pid] = value if not self.started else 0.0
                self.last[pid] = value
        self.started = True

    def totals(self) -> dict[str, float]:
        totals: Counter = Counter()
        for pid, value in self.last.items():
            totals[self.group_of[pid]] += value - self.first[pid]
        totals["machine (everything)"] = machine_busy_seconds() - self.busy_start
        return {group: round(value, 1) for group, value in totals.items()}


def postgres_backends(database_url: str) -> list[int]:
    try:
        return backend_pids(database_url)
    except Exception:  # noqa: BLE001 - accounting only
        return []


def rabbitmq_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# ------------------------------------------------------------------------------ the systems


class Ours:
    """`ours`, or `ours-no-reconcile` (`reconcile=False`: the reconcile job never runs, for
    the clean run's throughput without it). In a chaos run (`chaos=True`) the reconciler
    also fetches the status of every `sent` SMS after RECONCILE_STATUS_AFTER_SECONDS, and the
    run waits for it: no status callback ever comes, so what is still `sent` at the end is
    stuck there."""

    def __init__(
        self,
        database_url: str,
        journeys: str,
        twilio: FakeTwilio,
        workdir: Path,
        *,
        reconcile: bool = True,
        chaos: bool = False,
        caps: str = "off",
    ) -> None:
        self.name = "ours" if reconcile else "ours-no-reconcile"
        self.database_url = database_url
        self.workdir = workdir
        self.chaos = chaos
        status_fetch = dict(
            ORCHESTRATOR_RECONCILE_STATUS_AFTER_SECONDS=str(RECONCILE_STATUS_AFTER_SECONDS),
            ORCHESTRATOR_RECONCILE_LOOKUPS_PER_SECOND=str(RECONCILE_LOOKUPS_PER_SECOND),
            ORCHESTRATOR_RECONCILE_BATCH_SIZE=str(RECONCILE_BATCH_SIZE),
        )
        self.env = python_env(
            DATABASE_URL=database_url,
            ORCHESTRATOR_AUTO_MIGRATE="false",
            ORCHESTRATOR_JOURNEYS_DIR=journeys,
            ORCHESTRATOR_SMS_PROVIDER="twilio",
            ORCHESTRATOR_TWILIO_API_BASE_URL=twilio.url,
            ORCHESTRATOR_FAKE_TWILIO_AUTH_TOKEN=twilio.auth_token,
            ORCHESTRATOR_WHATSAPP_PROVIDER="local",
            ORCHESTRATOR_EMAIL_PROVIDER="local",
            ORCHESTRATOR_PUBLIC_BASE_URL="http://127.0.0.1:9",  # status callbacks are off; nothing listens
            ORCHESTRATOR_RECONCILE_AFTER_SECONDS=str(RECONCILE_AFTER_SECONDS),
            ORCHESTRATOR_RECONCILE_RESEND_AFTER_SECONDS=str(RECONCILE_RESEND_AFTER_SECONDS),
            ORCHESTRATOR_RECONCILE_RETRY_SECONDS="5",
            **(status_fetch if chaos else {}),
            **({} if reconcile else {"ORCHESTRATOR_RECONCILE_INTERVAL_SECONDS": str(NO_RECONCILE_INTERVAL_SECONDS)}),
            # `off`: a file that is not there, i.e. no caps (docs/frequency-caps.md)
            ORCHESTRATOR_FREQUENCY_CAPS_FILE=str(workdir / "no-caps.yaml") if caps == "off" else caps,
        )

    def prepare(self) -> None:
        pass

    def start_worker(self, index: int) -> subprocess.Popen:
        return spawn(
            [sys.executable, "-m", "orchestrator.cli", "worker"],
            env=self.env,
            log=self.workdir / f"{self.name}-worker-{index}.log",
        )

    def remaining(self) -> int:
        """Enrollments still active plus messages not yet final: `unknown` SMS too, which the
        reconciler settles by asking the fake once the reconcile window has passed, and in a
        chaos run `sent` ones, whose status it fetches."""
        import psycopg

        unsettled = ("queued", "sending", "unknown", *(("sent",) if self.chaos else ()))
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            active = connection.execute("SELECT count(*) FROM enrollments WHERE status = 'active'").fetchone()[0]
            pending = connection.execute(
                "SELECT count(*) FROM messages WHERE status = ANY(%s)", (list(unsettled),)
            ).fetchone()[0]
        return active + pending

    def final_state(self) -> dict:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as connection:
            statuses = dict(connection.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
            enrollments = dict(
                connection.execute(
                    "SELECT status || ': ' || coalesce(exit_reason, ''), count(*) FROM enrollments GROUP BY 1"
                ).fetchall()
            )
            unknown = [
                row[0]
                for row in connection.execute("SELECT to_address FROM messages WHERE status = 'unknown'").fetchall()
            ]
            found = connection.execute(
                "SELECT count(*) FROM messages WHERE status_reason LIKE '%found by the reconciler%'"
            ).fetchone()[0]
            requeued = connection.execute("SELECT coalesce(sum(requeues), 0) FROM messages").fetchone()[0]
        return {
            "message_statuses": statuses,
            "enrollments": enrollments,
            "unknown_phones": unknown,
            "found_by_reconciler": found,
            "requeued_by_reconciler": int(requeued),
            # Only a chaos run fetches statuses; in a clean one every SMS stays `sent` by design.
            "stuck_at_sent": statuses.get("sent", 0) if self.chaos else None,
        }

    def cleanup(self) -> None:
        pass


class CeleryBaseline:
    def __init__(
        self, database_url: str, abandoned_at: str, twilio: FakeTwilio, workdir: Path, acks_late: bool, concurrency: int
    ) -> None:
        self.name = "celery-acks-late" if acks_late else "celery"
        self.database_url = database_url
        self.workdir = workdir
        self.queue = f"bench_cart_{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.abandoned_at = abandoned_at
        self.env = python_env(
            BENCH_CELERY_BROKER=BROKER_URL,
            BENCH_CELERY_QUEUE=self.queue,
            BENCH_CELERY_ACKS_LATE="1" if acks_late else "0",
            BENCH_DATABASE_URL=database_url,
            BENCH_TWILIO_URL=twilio.url,
            BENCH_TWILIO_AUTH_TOKEN=twilio.auth_token,
        )
        self.published = 0

    def prepare(self) -> None:
        """The web app's `apply_async(countdown=3600)` at the time each cart was abandoned,
        replayed now: the countdown is what is left of the hour (negative: the ETA passed)."""
        command = [sys.executable, str(Path(__file__).resolve()), "_publish", self.database_url]
        output = subprocess.run(
            command, env=self.env, cwd=REPO, check=True, capture_output=True, text=True, timeout=1800
        )
        self.published = int(output.stdout.strip().splitlines()[-1])

    def start_worker(self, index: int) -> subprocess.Popen:
        celery = str(Path(sys.executable).parent / "celery")
        return spawn(
            [
                celery,
                "-A",
                "bench.celery_baseline",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "WARNING",
                "-n",
                f"bench{index}-{self.queue}@{HOST}",
            ],
            env=self.env,
            log=self.workdir / f"{self.name}-worker-{index}.log",
        )

    def ready_messages(self) -> int:
        import amqp

        connection = amqp.Connection(f"{HOST}:5672", userid="guest", password="guest")
        connection.connect()
        try:
            _, ready, _consumers = connection.channel().queue_declare(self.queue, passive=True)
            return ready
        finally:
            connection.close()

    def remaining(self) -> int:
        return self.ready_messages()

    def final_state(self) -> dict:
        return {"published_tasks": self.published, "ready_messages_left": self.ready_messages()}

    def cleanup(self) -> None:
        import amqp

        try:
            connection = amqp.Connection(f"{HOST}:5672", userid="guest", password="guest")
            connection.connect()
            try:
                connection.channel().queue_delete(self.queue)
            finally:
                connection.close()
        except Exception as error:  # noqa: BLE001 - cleanup must not hide the result
            print(f"could not delete queue {self.queue}: {error}", file=sys.stderr)


def publish_main(argv: list[str]) -> int:
    """Publish one task per abandoned cart (run with the Celery environment)."""
    import psycopg

    from bench.celery_baseline import app, remind_abandoned_cart

    (database_url,) = argv
    with psycopg.connect(database_url, autocommit=True) as connection:
        carts = connection.execute(
            "SELECT c.user_id, c.phone, e.received_at FROM events e JOIN customers c ON c.id = e.customer_id "
            "WHERE e.name = 'Cart Abandoned' ORDER BY e.id"
        ).fetchall()
    now = datetime.now(timezone.utc)
    with app.producer_or_acquire() as producer:
        for user_id, phone, abandoned_at in carts:
            remind_abandoned_cart.apply_async(
                (user_id, phone, abandoned_at.isoformat()),
                countdown=3600 - (now - abandoned_at).total_seconds(),
                producer=producer,
            )
    print(len(carts))
    return 0


# ------------------------------------------------------------------------------- one run


def run_system(
    system,
    twilio: FakeTwilio,
    expected: dict,
    kills: int,
    kill_interval: float,
    profile_path: Path | None = None,
    profile_idle: bool = False,
) -> dict:
    """Start two workers, inject kills if asked, wait until everything settled; measure."""
    expected_sms = expected["expected_sms"]
    milestones = {round(expected_sms * f): f"{int(f * 100)}%" for f in (0.1, 0.5, 1.0)}
    rss_at: dict[str, list[int]] = {}
    rss_peak = [0, 0]
    samples = []
    killed = 0
    workers: list[subprocess.Popen] = []
    cpu = CpuTracker()
    groups = lambda: {
        "workers": [p for w in workers for p in descendants(w.pid)],  # noqa: E731
        "fake Twilio": [twilio.process.pid],
        "PostgreSQL backends": postgres_backends(system.database_url),
        **({"RabbitMQ": rabbitmq_pids()} if not isinstance(system, Ours) else {}),
    }
    spy = None
    settle = CHAOS_SETTLE_SECONDS if kills else SETTLE_SECONDS
    start = time.time()
    try:
        workers = [system.start_worker(0), system.start_worker(1)]
        cpu.sample(groups())

        def start_profile():  # once the first SMS is out: start-up and imports are not the steady state
            return spawn(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(workers[0].pid),
                    "--subprocesses",
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--duration",
                    "30",
                    "--output",
                    str(profile_path),
                    "--nonblocking",
                    *(["--idle"] if profile_idle else []),
                ],
                log=profile_path.with_suffix(".log"),
            )

        next_kill = start + kill_interval
        last_count, last_change, last_db_check, remaining = -1, time.monotonic(), 0.0, None
        while True:
            time.sleep(POLL_SECONDS)
            now = time.time()
            count = twilio.poll()
            if profile_path is not None and spy is None and count > 0:
                spy = start_profile()
            rss = [sum(rss_bytes(pid) for pid in descendants(w.pid)) for w in workers]
            cpu.sample(groups())
            rss_peak = [max(a, b) for a, b in zip(rss_peak, rss)]
            samples.append((round(now - start, 1), count, rss))
            for threshold, label in milestones.items():
                if count >= threshold and label not in rss_at:
                    rss_at[label] = rss
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if killed < kills and now >= next_kill:
                victim = killed % 2
                kill_group(workers[victim])
                workers[victim].wait(10)
                workers[victim] = system.start_worker(victim)
                killed += 1
                next_kill = now + kill_interval
                continue
            quiet = time.monotonic() - last_change
            if (
                killed >= kills
                and (count >= expected_sms or quiet >= settle)
                and time.monotonic() - last_db_check >= 1.0
            ):
                last_db_check = time.monotonic()
                remaining = system.remaining()
                if remaining == 0 and (count >= expected_sms or quiet >= settle):
                    break
            if now - start > RUN_TIMEOUT_SECONDS:
                print(f"  {system.name}: gave up after {RUN_TIMEOUT_SECONDS:.0f} s ({remaining} left)", flush=True)
                break
    finally:
        cpu.sample(groups())
        if spy is not None:
            try:
                spy.wait(40)
            except subprocess.TimeoutExpired:
                pass
            stop_group(spy)
        for worker in workers:
            stop_group(worker)
    twilio.poll()
    last = twilio.last_accept_time() or time.time()
    elapsed = last - start
    return {
        "started": start,
        "elapsed_seconds": round(elapsed, 2),
        "kills": killed,
        "customers_per_second": round(expected["customers"] / elapsed, 1),
        "sms_per_second": round(twilio.count / elapsed, 1),
        "rss_mib": {label: [round(v / 2**20, 1) for v in values] for label, values in rss_at.items()},
        "rss_peak_mib": [round(v / 2**20, 1) for v in rss_peak],
        "cpu_seconds": cpu.totals(),
        "cpu_ms_per_customer": {
            group: round(1000 * value / expected["customers"], 2) for group, value in cpu.totals().items()
        },
        "rss_samples": samples[:: max(1, len(samples) // 60)],
    }


def worker_log_errors(workdir: Path, name: str) -> dict:
    """ERROR lines in the workers' logs, by their last line's first words (what went wrong)."""
    found: Counter = Counter()
    for log in workdir.glob(f"{name}-worker-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if " ERROR " in line or line.startswith(("[ERROR", "ERROR")) or "ERROR/" in line:
                found[line.split("]", 1)[-1].strip()[:120]] += 1
    return dict(found.most_common(5))


def verdict(twilio: FakeTwilio, customers: int, order_every: int, unknown_phones: list[str] | None = None) -> dict:
    """What the fake received against what should have been sent."""
    received = Counter(entry["to"] for entry in twilio.witnessed())
    should = {phone_of(i) for i in range(customers) if i % order_every != 0}
    should_not = {phone_of(i) for i in range(customers) if i % order_every == 0}
    unknown = set(unknown_phones or [])
    missing = should - set(received)
    return {
        "witnessed": sum(received.values()),
        "distinct_customers_texted": len(received),
        "duplicates": sum(times - 1 for times in received.values() if times > 1),
        "customers_texted_twice_or_more": sum(1 for times in received.values() if times > 1),
        "losses": len(missing - unknown),
        "wrong_sends_to_customers_who_ordered": len(should_not & set(received)),
        "unknown": len(unknown),
        "unknown_received_by_fake": len(unknown & set(received)),
        "unknown_not_received": len(unknown - set(received)),
    }


def one_run(system_name: str, args, workdir: Path, customers: int, kills: int) -> dict:
    tag = f"{system_name}-{'chaos' if kills else 'clean'}"
    with scratch_database("e2e", keep=args.keep_database) as database_url:
        expected = prepare_database(database_url, customers, args.order_every, workdir / tag)
        twilio = FakeTwilio(workdir, tag)
        system = None
        try:
            if system_name.startswith("ours"):
                system = Ours(
                    database_url,
                    expected["journeys"],
                    twilio,
                    workdir / tag,
                    reconcile=system_name == "ours",
                    chaos=bool(kills),
                    caps=args.frequency_caps,
                )
            else:
                system = CeleryBaseline(
                    database_url,
                    expected["abandoned_at"],
                    twilio,
                    workdir / tag,
                    acks_late=system_name == "celery-acks-late",
                    concurrency=args.celery_concurrency,
                )
            published = time.monotonic()
            system.prepare()
            prepare_seconds = time.monotonic() - published
            cpu_before = twilio.cpu_seconds()
            profile_path = workdir / f"profile-{tag}.txt" if args.profile and not kills else None
            result = run_system(system, twilio, expected, kills, args.kill_interval, profile_path, args.profile_idle)
            if profile_path is not None and profile_path.exists():
                result["profile"] = summarize_profile(profile_path)
                print_profile(system_name, result["profile"])
            result["fake_twilio_cpu_seconds"] = round(twilio.cpu_seconds() - cpu_before, 1)
            final = system.final_state()
            final["worker_log_errors"] = worker_log_errors(workdir / tag, system.name)
            result["verdict"] = verdict(twilio, customers, args.order_every, final.pop("unknown_phones", None))
            result["final_state"] = final
        finally:
            twilio.stop()
            if system is not None:
                system.cleanup()
    result.update(
        system=system_name,
        run="chaos" if kills else "clean",
        customers=customers,
        expected_sms=expected["expected_sms"],
        ingest_seconds=expected["ingest_seconds"],
        publish_seconds=round(prepare_seconds, 1) if not system_name.startswith("ours") else None,
        kill_interval=args.kill_interval if kills else None,
        celery_concurrency=args.celery_concurrency if not system_name.startswith("ours") else None,
    )
    return result


PROFILE_FUNCTIONS = {
    "ours: run_due_enrollments (claim, load, advance, insert messages)": "run_due_enrollments (orchestrator/engine/worker.py",
    "ours:   prepare_message (render, consent, segments)": "prepare_message (orchestrator/engine/messages.py",
    "ours: dispatch_queued_messages (claim, send, record)": "dispatch_queued_messages (orchestrator/engine/dispatch.py",
    "ours:   twilio SDK create_async (request building + aiohttp)": "MessageList.create_async (twilio/rest/api/v2010/account/message/__init__.py",
    "ours: reconcile_round (ask the provider about ambiguous sends)": "reconcile_round (orchestrator/engine/reconcile.py",
    "celery: task body (order check + SDK create)": "remind_abandoned_cart (bench/celery_baseline.py",
    "celery:   twilio SDK create (requests)": "MessageList.create (twilio/rest/api/v2010/account/message/__init__.py",
    "SQLAlchemy (any frame)": "(sqlalchemy/",
    "psycopg (any frame)": "(psycopg/",
}


def summarize_profile(raw_path: Path) -> dict:
    """Inclusive share of a few functions among the samples of worker 0 (py-spy raw output)."""
    inclusive: Counter = Counter()
    packages: Counter = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        if any("Condition.wait (threading.py" in f or "Queue.get (queue.py" in f for f in frames):
            continue
        total += count
        location = frames[-1].rsplit("(", 1)[-1]
        packages[location.split("/", 1)[0].split(":", 1)[0] if "/" in location else "native/other"] += count
        for label, needle in PROFILE_FUNCTIONS.items():
            if any(needle in frame for frame in frames):
                inclusive[label] += count
    total = max(total, 1)
    return {
        "samples": total,
        "self_percent_by_package": [(k, round(100 * v / total, 1)) for k, v in packages.most_common(10)],
        "inclusive_percent": [(k, round(100 * inclusive[k] / total, 1)) for k in PROFILE_FUNCTIONS if inclusive[k]],
    }


def print_profile(name: str, profile: dict) -> None:
    print(
        f"  profile of worker 0 ({name}, {profile['samples']} samples at 100 Hz): "
        + ", ".join(f"{k} {v}%" for k, v in profile["self_percent_by_package"]),
        flush=True,
    )
    for label, share in profile["inclusive_percent"]:
        print(f"    {share:5.1f}%  {label}")


def print_row(r: dict) -> None:
    v, final = r["verdict"], r.get("final_state", {})
    rss = " ".join(f"{label}:{'/'.join(str(x) for x in values)}" for label, values in r["rss_mib"].items())
    # Celery has no `unknown` and no status at all: n/a, not 0.
    settled = (
        f"unknown {v['unknown']} (received {v['unknown_received_by_fake']})  "
        f"stuck at sent {'n/a' if final['stuck_at_sent'] is None else final['stuck_at_sent']}  "
        f"found by reconciler {final['found_by_reconciler']}  requeued {final['requeued_by_reconciler']}"
        if "stuck_at_sent" in final
        else "unknown n/a  stuck at sent n/a"
    )
    print(
        f"{r['system']:<17} {r['run']:<5} {r['customers']:>7,} customers  {r['customers_per_second']:>8,.1f} cust/s "
        f"({r['sms_per_second']:,.1f} SMS/s, {r['elapsed_seconds']:.1f} s)  kills {r['kills']}  "
        f"dup {v['duplicates']}  lost {v['losses']}  wrong {v['wrong_sends_to_customers_who_ordered']}  "
        f"{settled}  "
        f"RSS MiB per worker {rss} peak {'/'.join(str(x) for x in r['rss_peak_mib'])}",
        flush=True,
    )
    print("    CPU ms per customer: " + ", ".join(f"{k} {v}" for k, v in r["cpu_ms_per_customer"].items()), flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_ingest":
        return ingest_main(argv[1:])
    if argv and argv[0] == "_publish":
        return publish_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000, help="customers in the clean (throughput) run")
    parser.add_argument("--chaos-customers", type=int, default=10_000, help="customers in the SIGKILL run; 0: skip")
    parser.add_argument("--systems", default="ours,celery,celery-acks-late")
    parser.add_argument("--runs", default="clean,chaos")
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--kill-interval", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--celery-concurrency", type=int, default=4, help="prefork children per Celery worker")
    parser.add_argument("--order-every", type=int, default=10, help="every n-th customer orders (not texted)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on worker 0 during the clean runs (30 s from the first SMS)"
    )
    parser.add_argument("--profile-idle", action="store_true", help="profile wall time (waiting included), not CPU")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and profiles here (default: a temp dir)")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--frequency-caps",
        default=str(REPO / "policies" / "frequency.yaml"),
        help="ours: the caps file its workers apply at dispatch (default: the shipped one), or `off`",
    )
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if unknown_systems := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown_systems)}; choose from {', '.join(SYSTEMS)}")
    runs = [r for r in args.runs.split(",") if r]
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            for run in runs:
                customers, kills = (args.customers, 0) if run == "clean" else (args.chaos_customers, args.kills)
                if not customers:
                    continue
                for system_name in systems:
                    if system_name == "ours-no-reconcile" and kills:
                        continue  # without the reconciler a kill leaves `sending` rows for good: nothing to wait for
                    (workdir / f"{system_name}-{run}").mkdir()
                    result = one_run(system_name, args, workdir, customers, kills)
                    print_row(result)
                    results.append(result)
        except BaseException:
            for log in sorted(workdir.rglob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
    ours = {r["run"]: r for r in results if r["system"] == "ours"}
    for r in results:
        if r["system"] == "ours-no-reconcile" and "clean" in ours:
            cost = 1 - ours["clean"]["customers_per_second"] / r["customers_per_second"]
            r["reconciler_throughput_cost"] = round(cost, 3)
            print(f"the reconciler's throughput cost (clean, ours vs ours-no-reconcile): {100 * cost:.1f}%")
        elif r["system"] != "ours" and r["run"] in ours:
            r["ours_vs_this_throughput"] = round(ours[r["run"]]["customers_per_second"] / r["customers_per_second"], 2)
            print(f"ours / {r['system']} ({r['run']}): {r['ours_vs_this_throughput']}x")
    print(f"total {time.monotonic() - started:.0f} s")
    if not args.no_save:
        path = append_results("end_to_end", {"args": vars(args), "results": results})
        print(f"results appended to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
