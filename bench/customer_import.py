"""Customer import benchmark: a million CSV rows into PostgreSQL, in bounded memory.

    .venv/bin/python bench/customer_import.py [--rows 1000000] [--naive-sample 20000]

On a PostgreSQL database created for the run (dropped at the end):

1. `orchestrator migrate`; a CSV of `--rows` generated customers (userId, e-mail, phone,
   locale, two traits, an SMS consent on every tenth line) written to a temporary file;
2. `orchestrator customers import FILE` as its own process, as an operator runs it: wall
   time, rows/s, and its RSS sampled every 0.5 s (peak, and at a quarter, half and three
   quarters of the run: flat memory means these stay put while the rows grow);
3. the same file again: the idempotent re-run (nothing written);
4. the alternatives, named, in the same run: a naive row-by-row ORM upsert (SELECT the
   customer, add or update it, commit, per line) on the first `--naive-sample` lines into
   a fresh table set, and PostgreSQL `COPY` of the whole file into a bare staging table
   (no checks, no upsert, no indexes): the ceiling.

Results: a table on stdout, appended to bench/results/customer_import-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    append_results,
    migrate,
    python_env,
    rss_bytes,
    scratch_database,
    spawn,
    stop_group,
)

LOCALES = ("en", "fr-FR", "es", "de", "en-GB")
PLANS = ("free", "silver", "gold")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["userId", "email", "phone", "locale", "consent_sms", "plan", "size"])
        for i in range(rows):
            out.writerow(
                [
                    f"user-{i:07d}",
                    f"user{i}@example.com",
                    f"+1415{i % 10_000_000:07d}",
                    LOCALES[i % len(LOCALES)],
                    "opted_in" if i % 10 == 0 else "",
                    PLANS[i % len(PLANS)],
                    str(36 + i % 10),
                ]
            )


def timed_import(database_url: str, path: Path, log: Path) -> dict:
    """`orchestrator customers import` in a process of its own, its RSS sampled."""
    started = time.monotonic()
    process = spawn(
        [sys.executable, "-m", "orchestrator.cli", "customers", "import", str(path)],
        env=python_env(DATABASE_URL=database_url),
        log=log,
    )
    samples: list[tuple[float, int]] = []
    try:
        while process.poll() is None:
            samples.append((time.monotonic() - started, rss_bytes(process.pid)))
            time.sleep(0.5)
    finally:
        stop_group(process)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"import exited with {process.returncode}; see {log}")
    mib = [rss for _, rss in samples if rss]

    def at(fraction: float) -> float:
        later = [rss for t, rss in samples if t >= fraction * seconds and rss]
        return round((later[0] if later else 0) / 2**20, 1)

    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(max(mib) / 2**20, 1) if mib else None,
        "rss_mib_at_25_50_75_percent": [at(0.25), at(0.5), at(0.75)],
    }


async def naive_orm_upsert(database_url: str, path: Path, sample: int) -> float:
    """Row by row through the ORM, one transaction per line: what a first version does."""
    from sqlmodel import select

    from orchestrator.clock import Clock
    from orchestrator.storage.database import create_engine, session_factory
    from orchestrator.storage.models import Customer

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    started = time.monotonic()
    with path.open(newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            if n >= sample:
                break
            async with sessions() as session, session.begin():
                customer = (await session.exec(select(Customer).where(Customer.user_id == row["userId"]))).first()
                now = Clock().now()
                if customer is None:
                    customer = Customer(user_id=row["userId"], traits={}, created_at=now)
                    session.add(customer)
                customer.email, customer.phone, customer.locale = row["email"], row["phone"], row["locale"]
                customer.traits = {**customer.traits, "plan": row["plan"], "size": row["size"]}
                customer.updated_at = now
    seconds = time.monotonic() - started
    await engine.dispose()
    return seconds


def copy_ceiling(database_url: str, path: Path) -> float:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE UNLOGGED TABLE import_ceiling (user_id text, email text, phone text, locale text,"
            " consent_sms text, plan text, size text)"
        )
        started = time.monotonic()
        with (
            connection.cursor() as cursor,
            path.open("rb") as handle,
            cursor.copy("COPY import_ceiling FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        log = folder / "import.log"
        path = folder / "customers.csv"
        write_csv(path, args.rows)
        print(f"{args.rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB of CSV", file=sys.stderr)
        with scratch_database("customer_import") as database_url:
            migrate(database_url, log)
            first = timed_import(database_url, path, log)
            again = timed_import(database_url, path, log)
            copy_seconds = copy_ceiling(database_url, path)
        with scratch_database("customer_import_naive") as naive_url:
            migrate(naive_url, log)
            naive_seconds = asyncio.run(naive_orm_upsert(naive_url, path, args.naive_sample))
    return report(args, first, again, copy_seconds, naive_seconds)


def report(args, first, again, copy_seconds, naive_seconds) -> int:
    rows = args.rows
    results = {
        "rows": rows,
        "import": {**first, "rows_per_second": round(rows / first["seconds"])},
        "same_file_again": {**again, "rows_per_second": round(rows / again["seconds"])},
        "naive_orm_row_by_row": {
            "rows": args.naive_sample,
            "seconds": round(naive_seconds, 1),
            "rows_per_second": round(args.naive_sample / naive_seconds),
        },
        "copy_ceiling": {"seconds": round(copy_seconds, 1), "rows_per_second": round(rows / copy_seconds)},
    }
    print(f"{'what':<40} {'rows/s':>10} {'seconds':>9} {'peak RSS MiB':>13}")
    for name, key in (
        (f"orchestrator customers import ({rows:,})", "import"),
        ("the same file again (nothing changes)", "same_file_again"),
        (f"naive ORM row by row ({args.naive_sample:,})", "naive_orm_row_by_row"),
        ("PostgreSQL COPY into a bare table", "copy_ceiling"),
    ):
        figures = results[key]
        peak = figures.get("peak_rss_mib")
        print(f"{name:<40} {figures['rows_per_second']:>10,} {figures['seconds']:>9} {peak if peak else '':>13}")
    print(f"RSS at 25/50/75% of the import: {first['rss_mib_at_25_50_75_percent']} MiB")
    print(f"results: {append_results('customer_import', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
