"""Frequency caps: what the cap check adds to claiming messages for dispatch.

    .venv/bin/python bench/frequency_caps.py [--customers 20000] [--per-customer 1] [--repeat 3]

On a database of its own (local PostgreSQL), `--customers` customers (half in Tokyo, half in
Los Angeles) each get `--per-customer` queued marketing SMS at mixed priorities. The
dispatcher's claim (`claim_queued_messages`, batches of 200, as one dispatch round claims
them) then drains them, once without caps and once with the shipped `policies/frequency.yaml`
(SMS: 1 a day, 3 a week), alternating `--repeat` times on fresh rows so load drifts on a
shared machine hit both alike. Each fill ends with VACUUM ANALYZE, as autovacuum would have
done (the local server runs without it): otherwise the dead rows of the previous round make
every later round slower than the one before. Nothing is handed to a provider: that part is the same with
or without caps, and the end-to-end benchmark measures it.

Reported per 1,000 messages claimed (sent on, or capped): wall time of the claims, CPU of this process, CPU of the
PostgreSQL backends, and how many messages were capped. Results: a table on stdout,
appended to bench/results/frequency_caps-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import REPO, append_results, backend_pids, cpu_seconds, machine_busy_seconds, scratch_database  # noqa: E402

START = datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)
CLAIM = 200


async def fill(runtime, customers: int, per_customer: int, first_run: bool) -> None:
    import sqlalchemy as sa

    from orchestrator.storage.models import Customer, FrequencyCapSlot, Message
    from orchestrator.storage.queries import insert_many_ignoring_conflict

    async with runtime.sessions() as session, session.begin():
        connection = await session.connection()
        await connection.execute(sa.delete(FrequencyCapSlot.__table__))
        await connection.execute(sa.delete(Message.__table__))
        if first_run:
            rows = [
                dict(
                    id=i + 1,
                    user_id=f"c{i}",
                    phone=f"+1415{i:07d}",
                    timezone=("Asia/Tokyo", "America/Los_Angeles")[i % 2],
                    traits={},
                    created_at=START,
                    updated_at=START,
                )
                for i in range(customers)
            ]
            for low in range(0, len(rows), 5000):
                await insert_many_ignoring_conflict(session, Customer, rows[low : low + 5000], ["id"])
        messages = [
            dict(
                send_key=f"bench:{i}:{k}",
                customer_id=i + 1,
                journey_id="bench",
                step_id="send",
                channel="sms",
                to_address=f"+1415{i:07d}",
                body="Hello",
                template_metadata={},
                marketing=True,
                priority=(i + k) % 3,
                status="queued",
                next_attempt_at=START,
                created_at=START,
                updated_at=START,
                attempts=0,
            )
            for i in range(customers)
            for k in range(per_customer)
        ]
        for low in range(0, len(messages), 5000):
            await insert_many_ignoring_conflict(session, Message, messages[low : low + 5000], ["send_key"])
    async with runtime.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(sa.text("VACUUM ANALYZE"))  # as autovacuum would between bursts


async def drain(runtime) -> tuple[int, float, float, float]:
    from orchestrator.engine.dispatch import claim_queued_messages
    from orchestrator.vocabulary import Channel

    backends_before = cpu_seconds(backend_pids(runtime.settings.database_url))
    cpu, wall, claimed = time.process_time(), time.perf_counter(), 0
    while batch := await claim_queued_messages(runtime, Channel.sms, CLAIM):
        claimed += len(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    backends_after = cpu_seconds(backend_pids(runtime.settings.database_url))
    backend = sum(backends_after.get(pid, 0) - spent for pid, spent in backends_before.items())
    return claimed, wall, cpu, backend


async def capped_count(runtime) -> int:
    import sqlalchemy as sa

    async with runtime.engine.connect() as connection:
        return await connection.scalar(sa.text("SELECT count(*) FROM messages WHERE status = 'skipped'"))


async def run(args) -> list[dict]:
    from orchestrator.clock import SimulatedClock
    from orchestrator.config import Settings
    from orchestrator.policies.frequency import NO_CAPS, load_frequency_policy
    from orchestrator.startup import build_runtime

    policy = load_frequency_policy(REPO / "policies" / "frequency.yaml")
    results = []
    with scratch_database("caps") as url:
        settings = Settings(
            database_url=url,
            simulated_clock=True,
            email_provider="local",
            sms_provider="local",
            whatsapp_provider="local",
            frequency_caps_file=REPO / "policies" / "absent.yaml",
        )
        runtime = await build_runtime(settings, clock=SimulatedClock(START))
        try:
            first = True
            for repeat in range(args.repeat):
                for mode in ("off", "on"):
                    runtime.frequency = policy if mode == "on" else NO_CAPS
                    await fill(runtime, args.customers, args.per_customer, first)
                    first = False
                    busy = machine_busy_seconds()
                    claimed, wall, cpu, backend = await drain(runtime)
                    capped = await capped_count(runtime)
                    per_k = 1000 / (claimed + capped)  # per message taken off the queue, sent or capped
                    row = dict(
                        repeat=repeat + 1,
                        caps=mode,
                        messages=claimed + capped,
                        capped=capped,
                        wall_ms_per_1000=round(wall * 1000 * per_k, 1),
                        process_cpu_ms_per_1000=round(cpu * 1000 * per_k, 1),
                        postgres_cpu_ms_per_1000=round(backend * 1000 * per_k, 1),
                        machine_busy_seconds=round(machine_busy_seconds() - busy, 1),
                        wall_seconds=round(wall, 2),
                    )
                    print(
                        f"{repeat + 1} caps {mode:3}  {claimed + capped:>7,} claimed  {capped:>6,} of them capped  "
                        f"per 1,000: wall {row['wall_ms_per_1000']:>7.1f} ms  this process CPU "
                        f"{row['process_cpu_ms_per_1000']:>6.1f} ms  PostgreSQL CPU {row['postgres_cpu_ms_per_1000']:>6.1f} ms  "
                        f"(machine busy {row['machine_busy_seconds']} s in {row['wall_seconds']} s)"
                    )
                    results.append(row)
        finally:
            await runtime.aclose()
    for measure in ("wall_ms_per_1000", "process_cpu_ms_per_1000", "postgres_cpu_ms_per_1000"):
        off = statistics.median(r[measure] for r in results if r["caps"] == "off")
        on = statistics.median(r[measure] for r in results if r["caps"] == "on")
        print(f"median {measure}: off {off}, on {on} ({(on / off - 1) * 100:+.0f}%)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument(
        "--per-customer", type=int, default=1, help="queued SMS per customer (more than 1: some capped)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    if not args.no_save:
        path = append_results("frequency_caps", {"args": vars(args), "results": results})
        print(f"results appended to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
