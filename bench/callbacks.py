"""Twilio status callbacks at a target rate: can our webhook keep up with a burst?

    .venv/bin/python bench/callbacks.py [--callbacks 20000] [--rate 1000] [--api-workers 2]
                                        [--systems ours,one-update] [--connections 200]

For each system, on a PostgreSQL database created for the run and dropped after:

1. `orchestrator migrate`, then `--callbacks / 2` SMS messages loaded as `sent` with a
   Twilio SID and a price (so no callback asks Twilio for one: this measures the webhook
   and the database, not a network round trip to Twilio);
2. the server: `ours` is `orchestrator api --workers W --no-access-log` (uvicorn, the real
   `/webhooks/twilio/status`: signature, inbox, history, status rules); `one-update` is
   bench/callbacks_floor_app.py under the same uvicorn: the same signature check and one
   UPDATE per callback in its own transaction, on an engine with the same pool. The
   ceiling for this machine, not a design anyone should ship;
3. a load generator in ANOTHER process (`_load` in this file, aiohttp, up to
   `--connections` connections as Twilio opens many) fires every message's `sent` and
   then `delivered` callback, signed as Twilio signs them (the fake's own form,
   `status_callback_params`), open loop at `--rate` per second: a callback's latency runs
   from when it was due, so a server that falls behind is charged for the queue it causes.
   Each callback has Twilio's default read timeout (15 s); one not answered by then counts
   as `timeout` (Twilio would retry it once, per its default connection overrides);
4. afterwards the database is read: how many messages reached `delivered` (every one should).

Reported per system: callbacks/s achieved (answered 2xx / time from the first due to the
last answer), p50/p95/p99 latency, errors by kind, messages delivered, and the CPU seconds
of the server processes and the database's backends, and that CPU per callback answered
(work done for callbacks the client had given up on is waste, and is charged). Results are appended to
bench/results/callbacks-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    HOST,
    Processes,
    append_results,
    backend_pids,
    cpu_delta,
    cpu_seconds,
    descendants,
    free_port,
    migrate,
    percentile,
    python_env,
    scratch_database,
    wait_for_http,
)

AUTH_TOKEN = "bench-callbacks-auth-token"
ACCOUNT_SID = "AC" + "0" * 32
SENDER = "+15005550006"
STATUS_PATH = "/webhooks/twilio/status"
TWILIO_READ_TIMEOUT = 15.0
SYSTEMS = ("ours", "one-update")


def sid(i: int) -> str:
    return f"SM{i:032x}"


def seed(database_url: str, messages: int) -> None:
    import psycopg

    with psycopg.connect(database_url.replace("+asyncpg", ""), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO customers (user_id, phone, traits, created_at, updated_at) "
            "SELECT 'c' || i, '+1415' || lpad(i::text, 7, '0'), '{}', now(), now() FROM generate_series(0, %s - 1) i",
            (messages,),
        )
        connection.execute(
            "INSERT INTO messages (send_key, customer_id, channel, provider, status, to_address, body, "
            "template_metadata, marketing, attempts, provider_message_id, cost, cost_currency, "
            "created_at, sending_at, sent_at, updated_at) "
            "SELECT 'bench:' || c.id, c.id, 'sms', 'twilio', 'sent', c.phone, 'Flash sale', '{}', true, 1, "
            "'SM' || lpad(to_hex(c.id - 1), 32, '0'), 0.0079, 'USD', now(), now(), now(), now() "
            "FROM customers c"
        )


def delivered_count(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM messages WHERE status = 'delivered'").fetchone()[0]


def server_command(system: str, port: int, api_workers: int) -> list[str]:
    if system == "ours":
        return [
            sys.executable,
            *("-m", "orchestrator.cli", "api", "--host", HOST, "--port", str(port)),
            *("--workers", str(api_workers), "--no-access-log"),
        ]
    return [
        sys.executable,
        *("-m", "uvicorn", "bench.callbacks_floor_app:app", "--host", HOST, "--port", str(port)),
        *("--workers", str(api_workers), "--no-access-log", "--log-level", "warning"),
    ]


def run_system(system: str, args, workdir: Path) -> dict:
    messages = args.callbacks // 2
    with scratch_database("callbacks") as database_url:
        migrate(database_url, workdir / "migrate.log")
        seed(database_url, messages)
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        env = python_env(
            DATABASE_URL=database_url,
            ORCHESTRATOR_AUTO_MIGRATE="false",
            ORCHESTRATOR_PUBLIC_BASE_URL=base_url,
            ORCHESTRATOR_FAKE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            ORCHESTRATOR_EMAIL_PROVIDER="local",
        )
        processes = Processes()
        try:
            server = processes.spawn(server_command(system, port, args.api_workers), env, workdir / f"{system}.log")
            wait_for_http(base_url + "/health/live", timeout=60, process=server)
            time.sleep(1.0 if args.api_workers == 1 else 3.0)  # every uvicorn worker up
            pids = [server.pid, *descendants(server.pid)]
            backends = backend_pids(database_url)
            before = cpu_seconds(pids + backends)
            out = workdir / f"load-{system}.json"
            load = processes.spawn(
                [sys.executable, __file__, "_load", base_url, str(messages), str(args.rate), str(args.connections)],
                python_env(LOAD_RESULT=str(out)),
                workdir / f"load-{system}.log",
            )
            load.wait(timeout=args.callbacks / args.rate + 120)
            backends = sorted(set(backends) | set(backend_pids(database_url)))
            after = cpu_seconds(pids + backends)
            result = json.loads(out.read_text())
        finally:
            processes.stop_all()
        server_cpu = cpu_delta({p: before.get(p, 0.0) for p in pids}, {p: after.get(p, 0.0) for p in pids})
        database_cpu = cpu_delta({p: before.get(p, 0.0) for p in backends}, {p: after.get(p, 0.0) for p in backends})
        result.update(
            system=system,
            api_workers=args.api_workers,
            messages=messages,
            delivered=delivered_count(database_url),
            server_cpu_seconds=round(server_cpu, 1),
            database_cpu_seconds=round(database_cpu, 1),
            # Less at the mercy of other load on the machine than the rate is. Per callback
            # answered: work done for callbacks the client gave up on is waste, and counts.
            cpu_ms_per_callback=round(1000 * (server_cpu + database_cpu) / max(result["answered_2xx"], 1), 2),
        )
    return result


# ------------------------------------------------------------------ the load generator


def signed_callbacks(base_url: str, messages: int) -> list[tuple[str, dict, str]]:
    """Every message's `sent`, then every message's `delivered`: (url, form, signature)."""
    from twilio.request_validator import RequestValidator

    from orchestrator.fakes.twilio_callbacks import status_callback_params

    validator = RequestValidator(AUTH_TOKEN)
    callbacks = []
    for status in ("sent", "delivered"):
        for i in range(messages):
            resource = {
                "account_sid": ACCOUNT_SID,
                "from": SENDER,
                "sid": sid(i),
                "status": status,
                "to": f"+1415{i + 1:07d}",
                "messaging_service_sid": None,
                "error_code": None,
            }
            url = f"{base_url}{STATUS_PATH}?sk=bench%3A{i + 1}"
            form = status_callback_params(resource)
            callbacks.append((url, form, validator.compute_signature(url, form)))
    return callbacks


async def fire(base_url: str, messages: int, rate: float, connections: int) -> dict:
    import aiohttp
    from yarl import URL

    # As signed: yarl would otherwise re-encode the query (`%3A` to `:`) and break the signature.
    callbacks = [
        (URL(url, encoded=True), form, signature) for url, form, signature in signed_callbacks(base_url, messages)
    ]
    latencies: list[float] = []
    errors: Counter = Counter()
    timeout = aiohttp.ClientTimeout(total=TWILIO_READ_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as session:

        async def post(due: float, url: str, form: dict, signature: str) -> None:
            try:
                async with session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
                    await response.read()
                    if response.status >= 300:
                        errors[str(response.status)] += 1
                        return
            except TimeoutError:
                errors["timeout"] += 1
                return
            except aiohttp.ClientError as error:
                errors[type(error).__name__] += 1
                return
            latencies.append(time.perf_counter() - due)

        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        tasks = []
        for n, (url, form, signature) in enumerate(callbacks):
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(loop.create_task(post(due, url, form, signature)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = [1000 * latency for latency in latencies]
    return {
        "callbacks": len(callbacks),
        "target_per_second": rate,
        "answered_2xx": len(latencies),
        "callbacks_per_second": round(len(latencies) / elapsed, 1),
        "elapsed_seconds": round(elapsed, 2),
        "latency_p50_ms": round(percentile(ms, 0.50) or 0, 1),
        "latency_p95_ms": round(percentile(ms, 0.95) or 0, 1),
        "latency_p99_ms": round(percentile(ms, 0.99) or 0, 1),
        "errors": dict(errors),
    }


def load_main(argv: list[str]) -> None:
    import os

    base_url, messages, rate, connections = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    result = asyncio.run(fire(base_url, messages, rate, connections))
    Path(os.environ["LOAD_RESULT"]).write_text(json.dumps(result))


# ------------------------------------------------------------------------------ main


def print_row(result: dict) -> None:
    print(
        f"{result['system']:<11} {result['api_workers']:>2} workers  "
        f"{result['callbacks_per_second']:>7.1f}/s of {result['target_per_second']:.0f}/s target  "
        f"p50 {result['latency_p50_ms']:>7.1f} ms  p95 {result['latency_p95_ms']:>7.1f} ms  "
        f"p99 {result['latency_p99_ms']:>7.1f} ms  errors {result['errors'] or 0}  "
        f"delivered {result['delivered']}/{result['messages']}  "
        f"CPU server {result['server_cpu_seconds']} s, database {result['database_cpu_seconds']} s "
        f"({result['cpu_ms_per_callback']} ms per callback)",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=20_000, help="two per message: sent, delivered")
    parser.add_argument("--rate", type=float, default=1000.0, help="callbacks per second, open loop")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--systems", default="ours,one-update")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--logs", type=Path, help="keep the servers' and generators' logs here")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as workdir:
        logs = args.logs or Path(workdir)
        logs.mkdir(parents=True, exist_ok=True)
        for system in systems:
            result = run_system(system, args, logs)
            print_row(result)
            results.append(result)
    if not args.no_save:
        path = append_results("callbacks", {"results": results})
        print(f"appended to {path}")


if __name__ == "__main__":
    main()
