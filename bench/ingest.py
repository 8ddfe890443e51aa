"""Ingestion benchmark: events per second through `POST /v1/track`, `POST /v1/page` and `POST /v1/batch`.

    .venv/bin/python bench/ingest.py [--duration 15] [--concurrency 32] [--api-workers 1,2]
                                     [--scenarios track,page,batch100,batch1000] [--event NAME]
                                     [--floor] [--profile] [--access-log]

`--floor` first measures bench/floor_app.py (FastAPI and the same validation, no database)
with the same generator: what the framework alone costs on this machine.

For each API worker count, on a PostgreSQL database created for the run and dropped after:

1. `orchestrator migrate`, then 100,000 customers (`--users`) loaded with COPY, so events come
   from known customers as in steady state (a first-time user also costs an INSERT);
2. an `ingest` API key created (every request sends it, as in production), then
   `orchestrator api --workers W --no-access-log` started as its own process group
   (uvicorn, no worker loop, the shipped journeys loaded), on 127.0.0.1;
3. per scenario, a load generator in ANOTHER process (this file, `_load`: uvloop and one
   asyncio protocol per keep-alive connection) keeps `--concurrency` requests in flight for
   `--duration` seconds after a short warm-up (what completes inside the window counts),
   every event with a fresh `messageId` (no duplicates) from a random
   customer of the pool, event `Product Viewed` (no journey is triggered by it: the common
   case; `--event "Cart Abandoned"` measures events that enroll; the `page` scenario sends
   analytics.js-shaped page calls with url, referrer, UTM and context.page to /v1/page, and
   the run ends comparing its CPU per event with `track`'s: at most 1.2x). It reports events/s and
   p50/p99 request latency; this script adds the CPU seconds that the API processes, the
   PostgreSQL backends of the database, the load generator and everything else on the
   machine spent per 1,000 events;
4. with `--profile`, each scenario runs once more (not the measured run) with py-spy
   sampling the API processes at 100 Hz (blocking mode: whole stacks, at some cost to the
   profiled run's speed); samples are summed by the package of their innermost frame, and
   inclusively for the functions in PROFILE_FUNCTIONS.

Everything started is stopped at the end (process groups, SIGTERM then SIGKILL) and the
database is dropped. Results: a table on stdout, appended to bench/results/ingest-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    HOST,
    REPO,
    Processes,
    append_results,
    backend_pids,
    cpu_delta,
    cpu_seconds,
    descendants,
    free_port,
    machine_busy_seconds,
    migrate,
    percentile,
    python_env,
    scratch_database,
    wait_for_http,
)

SCENARIOS = {"track": 1, "page": 1, "batch100": 100, "batch1000": 1000}
# events/s, from the issues; a page call must cost at most 20 % more than a track event (docs/website-kpis.md)
TARGETS = {"track": 2000, "page": 2000, "batch100": 20000, "batch1000": 20000}
PAGE_CALL = "(page call)"  # the `page` scenario's stand-in for an event name: POST /v1/page
PAGE_OVER_TRACK_LIMIT = 1.20
WARMUP_SECONDS = 3.0


# ----------------------------------------------------------------- the load generator process


def event_json(user: int, message_id: str, event: str, rng: random.Random) -> str:
    if event == PAGE_CALL:  # what analytics.js sends for a product page: url and referrer twice over
        path, query = f"/products/p{rng.randrange(5000)}", "?utm_source=news&utm_medium=email"
        page = f'"path":"{path}","url":"https://shop.example{path}{query}","referrer":"https://www.google.com/","title":"Boots"'
        return (
            f'{{"type":"page","userId":"u{user}","anonymousId":"a{user}","name":"Product","messageId":"{message_id}",'
            f'"properties":{{{page},"search":"{query}"}},"context":{{"page":{{{page},"search":"{query}"}},'
            f'"campaign":{{"source":"news","medium":"email"}},"userAgent":"Mozilla/5.0 (iPhone) Mobile/15E148"}}}}'
        )
    return (
        f'{{"type":"track","userId":"u{user}","event":{json.dumps(event)},"messageId":"{message_id}",'
        f'"properties":{{"product_id":"p{rng.randrange(5000)}","price":{rng.randrange(1, 500)},"currency":"USD"}}}}'
    )


class Lane(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends the next request as soon as the previous
    answer is complete. A protocol object rather than an HTTP client library: at thousands of
    requests a second a client library costs the generator as much CPU as the API it measures
    (aiohttp: ~0.45 ms a request here), and both share 2 cores."""

    def __init__(self, load: Load, index: int) -> None:
        self.load = load
        self.index = index
        self.sequence = 0
        self.buffer = bytearray()
        self.expected = -1  # length of the whole response once the headers are in
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        if time.perf_counter() >= self.load.deadline:
            self.transport.close()
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.load.request(self))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected < 0:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            if b"content-length:" not in head:  # the API always sends one; anything else is a failure
                self.load.record(0, 0.0, bytes(self.buffer))
                self.transport.close()
                return
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            self.expected = head_end + 4 + length
        if len(self.buffer) < self.expected:
            return
        response, self.buffer = bytes(self.buffer[: self.expected]), self.buffer[self.expected :]
        self.expected = -1
        self.load.record(int(response[9:12]), time.perf_counter() - self.sent_at, response)
        self.send_next()

    def connection_lost(self, error) -> None:
        if not self.closed.done():
            self.closed.set_result(error)


class Load:
    def __init__(
        self,
        path: str,
        host: str,
        size: int,
        event: str,
        users: int,
        seed: int,
        warmup: float,
        duration: float,
        authorization: str | None,
    ) -> None:
        self.path, self.size, self.event, self.users = path, size, event, users
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:12]
        start = time.perf_counter()
        self.measure_from = start + warmup
        self.deadline = self.measure_from + duration
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n" + (
            f"Authorization: Bearer {authorization}\r\n" if authorization else ""
        )
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.events = 0
        self.error_samples: list[str] = []

    def request(self, lane: Lane) -> bytes:
        items = []
        for _ in range(self.size):
            lane.sequence += 1
            items.append(
                event_json(
                    self.rng.randrange(self.users), f"{self.run}-{lane.index}-{lane.sequence}", self.event, self.rng
                )
            )
        body = (items[0] if self.size == 1 else '{"batch":[' + ",".join(items) + "]}").encode()
        return f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def record(self, status: int, latency: float, response: bytes) -> None:
        if not self.measure_from <= time.perf_counter() <= self.deadline:
            return  # completed during the warm-up or after the window: not counted
        self.statuses[status] += 1
        if status == 200:
            self.latencies.append(latency)
            self.events += self.size
        elif len(self.error_samples) < 3:
            self.error_samples.append(response[:400].decode(errors="replace"))


async def generate_load(
    url: str,
    size: int,
    concurrency: int,
    duration: float,
    warmup: float,
    users: int,
    event: str,
    seed: int,
    authorization: str | None = None,
) -> dict:
    host, port = url.removeprefix("http://").split(":")
    load = Load(
        ("/v1/page" if event == PAGE_CALL else "/v1/track") if size == 1 else "/v1/batch",
        f"{host}:{port}",
        size,
        event,
        users,
        seed,
        warmup,
        duration,
        authorization,
    )
    loop = asyncio.get_running_loop()
    errors: Counter = Counter()
    lanes = []
    for index in range(concurrency):
        try:
            _, lane = await loop.create_connection(lambda i=index: Lane(load, i), host, int(port))
            lanes.append(lane)
        except OSError as error:
            errors[type(error).__name__] += 1
    closed = await asyncio.wait_for(asyncio.gather(*(lane.closed for lane in lanes)), timeout=duration + warmup + 180)
    errors.update(type(error).__name__ for error in closed if error is not None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies = load.latencies
    return {
        "events": load.events,
        "requests": len(latencies),
        "seconds": duration,
        "events_per_second": load.events / duration,
        "requests_per_second": len(latencies) / duration,
        "latency_p50_ms": 1000 * percentile(latencies, 0.50) if latencies else None,
        "latency_p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "latency_max_ms": 1000 * max(latencies) if latencies else None,
        "statuses": {str(k): v for k, v in load.statuses.items()},
        "errors": dict(errors),
        "error_samples": load.error_samples,
        "generator_cpu_seconds_total": usage.ru_utime + usage.ru_stime,
    }


def load_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/ingest.py _load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--event", default="Product Viewed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, default=None, help="written when the measured window starts")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(
        generate_load(
            args.url,
            args.size,
            args.concurrency,
            args.duration,
            args.warmup,
            args.users,
            args.event,
            args.seed,
            os.environ.get("BENCH_API_KEY"),
        )
    )
    args.out.write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------ the driver


def load_customers(database_url: str, users: int) -> None:
    """The customer pool, with COPY: u0 … u<users-1>."""
    import psycopg

    now = datetime.now(timezone.utc).isoformat()
    buffer = io.StringIO()
    for user in range(users):
        buffer.write(f"u{user}\t{{}}\t{now}\t{now}\n")
    with psycopg.connect(database_url, autocommit=True) as connection:
        with connection.cursor().copy("COPY customers (user_id, traits, created_at, updated_at) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        connection.execute("VACUUM ANALYZE customers")


# Functions whose inclusive share says where a request's time goes (py-spy names them
# "function (package/module.py:line)").
PROFILE_FUNCTIONS = {
    "request, end to end (FastAPI app)": "FastAPI.__call__ (fastapi/applications.py",
    "API-key check (auth dependency)": "AccessPolicy.__call__ (orchestrator/api/auth.py",
    "body parsing + validation (FastAPI/pydantic)": "request_body_to_args (fastapi/dependencies/utils.py",
    "ingest() total": "ingest (orchestrator/events/ingest.py",
    "  customer_ids (SELECT, INSERT the new)": "customer_ids (orchestrator/events/ingest.py",
    "  lock_customers (SELECT FOR UPDATE)": "lock_customers (orchestrator/events/ingest.py",
    "  insert events (INSERT RETURNING)": "insert_many_returning (orchestrator/storage/queries.py",
    "  load_customer_journeys (2 SELECTs)": "load_customer_journeys (orchestrator/engine/enrollments.py",
    "  Event(...) ORM objects for react_to_event": "__init__ (<sqlalchemy generated __init__ for class orchestrator.storage.models.Event>",
    "  react_to_event": "react_to_event (orchestrator/engine/enrollments.py",
    "psycopg parsing huge statements (_query2pg_nocache)": "_query2pg_nocache (psycopg/_queries.py",
    "commit": "AsyncSession.commit (sqlalchemy/ext/asyncio/session.py",
    "response model + serialization": "serialize_response (fastapi/routing.py",
    "uvicorn access log": "AccessFormatter.formatMessage (uvicorn/logging.py",
    "prometheus metrics": "record_ingested (orchestrator/metrics.py",
}


def summarize_profile(raw_path: Path, top: int = 12) -> dict:
    """py-spy `--format raw` (collapsed stacks): samples by the package of the innermost frame,
    and the inclusive share of the functions above."""
    by_package: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any("Condition.wait (threading.py" in frame or "Queue.get (queue.py" in frame for frame in frames):
            continue  # an idle threadpool thread, not CPU
        total += count
        location = frames[-1].rsplit("(", 1)[-1]
        package = location.split("/", 1)[0].split(":", 1)[0] if "/" in location else location.split(":", 1)[0]
        by_package[package or "native/other"] += count
        for label, needle in PROFILE_FUNCTIONS.items():
            if any(frame.startswith(needle) for frame in frames):
                inclusive[label] += count
    total = max(total, 1)
    return {
        "samples": total,
        "self_percent_by_package": [
            (name, round(100 * value / total, 1)) for name, value in by_package.most_common(top)
        ],
        "inclusive_percent": [(label, round(100 * inclusive[label] / total, 1)) for label in PROFILE_FUNCTIONS],
    }


def run_scenario(
    name: str, args, api_url: str, api_pid: int, database_url: str, workdir: Path, api_key: str, profile: bool = False
) -> dict:
    size = SCENARIOS[name]
    out = workdir / f"load-{name}-{'profile' if profile else 'measure'}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_load",
        "--url",
        api_url,
        "--size",
        str(size),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
        "--users",
        str(args.users),
        "--event",
        PAGE_CALL if name == "page" else args.event,
        "--out",
        str(out),
        "--seed",
        str(random.randrange(1 << 30)),
    ]
    processes = Processes()
    spy = None
    try:
        generator = processes.spawn(
            command, env=python_env(**({"BENCH_API_KEY": api_key} if api_key else {})), log=workdir / "load.log"
        )
        time.sleep(WARMUP_SECONDS)  # the generator counts from the end of its warm-up; so do we
        api_pids = descendants(api_pid)
        db_pids = backend_pids(database_url)
        before = cpu_seconds(api_pids), cpu_seconds(db_pids), machine_busy_seconds()
        if profile:
            spy_out = workdir / f"profile-{name}.txt"
            spy = processes.spawn(
                [
                    shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(api_pid),
                    "--subprocesses",
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--duration",
                    str(int(args.duration)),
                    "--output",
                    str(spy_out),
                ],
                log=workdir / "py-spy.log",
            )
        time.sleep(args.duration)
        after_api = cpu_seconds(descendants(api_pid))
        after_db = cpu_seconds(sorted(set(db_pids) | set(backend_pids(database_url))))
        busy_after = machine_busy_seconds()
        generator.wait(timeout=args.duration + 120)
        if spy is not None:
            spy.wait(timeout=60)
        result = json.loads(out.read_text())
    finally:
        processes.stop_all()
    api_cpu = cpu_delta(before[0], after_api)
    db_cpu = cpu_delta(before[1], after_db)
    generator_cpu = result.pop("generator_cpu_seconds_total") * args.duration / (args.duration + WARMUP_SECONDS)
    busy = busy_after - before[2]
    events = max(result["events"], 1)
    result.update(
        scenario=name,
        events_per_request=size,
        target_events_per_second=TARGETS[name],
        target_met=result["events_per_second"] >= TARGETS[name],
        cpu_ms_per_1000_events={
            "api": round(1e6 * api_cpu / events, 1),
            "postgres_backends": round(1e6 * db_cpu / events, 1),
            "load_generator": round(1e6 * generator_cpu / events, 1),
            "everything_else": round(1e6 * max(busy - api_cpu - db_cpu - generator_cpu, 0) / events, 1),
        },
        machine_cpu_busy_percent=round(100 * busy / (args.duration * os.cpu_count()), 1),
        api_cpu_percent_of_one_core=round(100 * api_cpu / args.duration, 1),
        postgres_cpu_percent_of_one_core=round(100 * db_cpu / args.duration, 1),
    )
    if profile:
        result["profile"] = summarize_profile(workdir / f"profile-{name}.txt")
    return result


def run_for_workers(workers: int, args, workdir: Path) -> list[dict]:
    results = []
    with scratch_database("ingest", keep=args.keep_database) as database_url:
        migrate(database_url, workdir / "migrate.log")
        load_customers(database_url, args.users)
        # As in production: the API is closed and the generator sends an `ingest` key.
        api_key = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "keys",
                "create",
                "--name",
                "load-generator",
                "--role",
                "ingest",
            ],
            cwd=REPO,
            env=python_env(DATABASE_URL=database_url),
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()
        port = free_port()
        api_url = f"http://{HOST}:{port}"
        env = python_env(
            DATABASE_URL=database_url, ORCHESTRATOR_AUTO_MIGRATE="false", ORCHESTRATOR_PUBLIC_BASE_URL=api_url
        )
        processes = Processes()
        try:
            api = processes.spawn(
                [
                    sys.executable,
                    "-m",
                    "orchestrator.cli",
                    "api",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    *([] if args.access_log else ["--no-access-log"]),
                ],
                env=env,
                log=workdir / f"api-{workers}.log",
            )
            wait_for_http(api_url + "/health/live", timeout=60, process=api)
            time.sleep(1.0 if workers == 1 else 3.0)  # every uvicorn worker up and its journeys loaded
            for name in args.scenarios:
                result = run_scenario(name, args, api_url, api.pid, database_url, workdir, api_key)
                result["api_workers"] = workers
                print_row(result)
                results.append(result)
                if args.profile and workers in args.profile_workers:
                    profiled = run_scenario(name, args, api_url, api.pid, database_url, workdir, api_key, profile=True)
                    result["profiled_run"] = {
                        k: profiled[k] for k in ("events_per_second", "latency_p50_ms", "latency_p99_ms", "profile")
                    }
                    print_profile(name, workers, profiled)
        finally:
            processes.stop_all()
    return results


def run_floor(args, workdir: Path) -> dict:
    """`--floor`: bench/floor_app.py in one uvicorn process, the `track` scenario against it."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    processes = Processes()
    try:
        server = processes.spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.floor_app:app",
                "--host",
                HOST,
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=python_env(),
            log=workdir / "floor.log",
        )
        wait_for_http(url + "/health/live", timeout=60, process=server)
        with scratch_database("ingest_floor") as database_url:  # idle: only for the CPU accounting
            result = run_scenario("track", args, url, server.pid, database_url, workdir, api_key="")
    finally:
        processes.stop_all()
    result.update(api_workers=1, floor=True)
    print("floor (FastAPI + TrackCall validation, nothing else):", end=" ")
    print_row(result)
    return result


def print_row(r: dict) -> None:
    cpu = r["cpu_ms_per_1000_events"]
    print(
        f"{r['api_workers']:>2} worker(s)  {r['scenario']:<10} {r['events_per_second']:>9,.0f} events/s "
        f"({r['requests_per_second']:>7,.1f} req/s)  p50 {r['latency_p50_ms'] or 0:>8.1f} ms  "
        f"p99 {r['latency_p99_ms'] or 0:>8.1f} ms  target {r['target_events_per_second']:,} "
        f"{'met' if r['target_met'] else 'NOT met'}  | CPU ms/1k events: api {cpu['api']}, "
        f"pg {cpu['postgres_backends']}, loadgen {cpu['load_generator']}, other {cpu['everything_else']}  "
        f"| machine busy {r['machine_cpu_busy_percent']}%  errors {r['errors'] or ''} statuses {r['statuses']}",
        flush=True,
    )


def print_profile(name: str, workers: int, r: dict) -> None:
    profile = r["profile"]
    print(f"   profile of the API ({workers} worker(s), {name}, {profile['samples']} samples at 100 Hz):", flush=True)
    print("     self time by package: " + ", ".join(f"{k} {v}%" for k, v in profile["self_percent_by_package"]))
    for label, share in profile["inclusive_percent"]:
        print(f"     {share:5.1f}%  {label}")


def page_over_track(results: list[dict]) -> list[dict]:
    """A page call's cost over a track event's, per API worker count measured with both: the
    CPU the API processes and PostgreSQL spent per event (what a page call costs the service),
    and the events per second. The limit is on the CPU ratio."""
    comparisons = []
    for workers in sorted({r["api_workers"] for r in results if not r.get("floor")}):
        found = {r["scenario"]: r for r in results if r["api_workers"] == workers and not r.get("floor")}
        if "track" not in found or "page" not in found:
            continue
        cpu = {name: found[name]["cpu_ms_per_1000_events"] for name in ("track", "page")}
        service = {name: cpu[name]["api"] + cpu[name]["postgres_backends"] for name in cpu}
        comparison = {
            "api_workers": workers,
            "service_cpu_ms_per_1000": {name: round(value, 1) for name, value in service.items()},
            "cpu_ratio": round(service["page"] / service["track"], 3),
            "throughput_ratio": round(found["page"]["events_per_second"] / found["track"]["events_per_second"], 3),
        }
        comparison["within_limit"] = comparison["cpu_ratio"] <= PAGE_OVER_TRACK_LIMIT
        comparisons.append(comparison)
        print(
            f"{workers} worker(s): a page call costs {comparison['cpu_ratio']:.2f}x a track event's service CPU "
            f"(api + postgres, {service['page']:.1f} vs {service['track']:.1f} ms/1k; limit {PAGE_OVER_TRACK_LIMIT:.2f}x: "
            f"{'met' if comparison['within_limit'] else 'NOT met'}), throughput {comparison['throughput_ratio']:.2f}x",
            flush=True,
        )
    return comparisons


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_load":
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--api-workers", default="1,2", help="uvicorn worker counts to measure, e.g. 1,2")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--users", type=int, default=100_000, help="customers the events come from")
    parser.add_argument("--event", default="Product Viewed")
    parser.add_argument("--profile", action="store_true", help="a second run per scenario under py-spy")
    parser.add_argument("--workdir", help="keep logs and profiles here (default: a temp dir)")
    parser.add_argument("--profile-workers", default="1", help="profile with these API worker counts only")
    parser.add_argument(
        "--floor", action="store_true", help="also measure bench/floor_app.py: FastAPI and validation without our work"
    )
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's log line per request")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--no-save", action="store_true", help="do not append to bench/results")
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.profile_workers = {int(w) for w in args.profile_workers.split(",")}
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {unknown}")
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if args.floor:
                results.append(run_floor(args, workdir))
            for workers in [int(w) for w in args.api_workers.split(",") if w]:
                results += run_for_workers(workers, args, workdir)
        except BaseException:
            for log in sorted(workdir.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
    print(f"total {time.monotonic() - started:.0f} s")
    comparisons = page_over_track(results)
    if not args.no_save:
        path = append_results(
            "ingest",
            {
                "duration": args.duration,
                "concurrency": args.concurrency,
                "users": args.users,
                "event": args.event,
                "results": results,
                "page_over_track": comparisons,
            },
        )
        print(f"results appended to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
