"""List pagination at a million rows: GET /v1/messages by offset and by cursor, on PostgreSQL.

    .venv/bin/python bench/list_pages.py [--rows 1000000] [--admin-url postgresql://postgres@127.0.0.1:5432/test]

Creates a database of its own (dropped at the end), migrates it, inserts the messages with
one INSERT … SELECT generate_series (30 s apart, one in ten in journey `welcome`, one in a
hundred `failed`), ANALYZEs, then times each page request through the app in-process
(httpx ASGI transport: routing, query, serialization; no socket), median of 5.
Figures: docs/api.md, "Lists and pagination".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import datetime, timezone

import httpx
import psycopg

from orchestrator.api.app import create_app
from orchestrator.api.pagination import encode_cursor
from orchestrator.clock import SimulatedClock
from orchestrator.config import Settings
from orchestrator.startup import build_runtime


async def main(rows: int, admin_url: str) -> None:
    name = f"orchestrator_list_pages_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        runtime = await build_runtime(
            Settings(database_url=url, simulated_clock=True),
            clock=SimulatedClock(datetime(2026, 3, 2, tzinfo=timezone.utc)),
        )
        with psycopg.connect(url, autocommit=True) as connection:
            started = time.perf_counter()
            connection.execute(
                "INSERT INTO customers (user_id, traits, created_at, updated_at) "
                "SELECT 'u' || g, '{}', now(), now() FROM generate_series(1, 1000) g"
            )
            connection.execute(f"""
                INSERT INTO messages (send_key, customer_id, journey_id, channel, status, template_metadata, marketing,
                                      attempts, created_at, updated_at)
                SELECT 'k' || g, 1 + g % 1000, CASE WHEN g % 10 = 0 THEN 'welcome' ELSE 'cart' END, 'email',
                       CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'delivered' END, '{{}}', true, 1,
                       timestamptz '2026-01-01' + g * interval '30 seconds', now()
                FROM generate_series(1, {rows}) g""")
            connection.execute("ANALYZE")
            print(f"inserted {rows} messages in {time.perf_counter() - started:.1f} s")
            deep = rows * 9 // 10
            created_at, message_id = connection.execute(
                "SELECT created_at, id FROM messages ORDER BY created_at, id OFFSET %s LIMIT 1", (deep,)
            ).fetchone()
        app = create_app(runtime.settings, run_worker=False, runtime=runtime)
        app.state.runtime = runtime
        oldest_first = encode_cursor("messagescreated_at", [created_at, message_id])
        newest_first = encode_cursor("messages-created_at", [created_at, message_id])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            for label, params in (
                (f"first page (counts total over {rows} rows)", {}),
                (f"page at row {deep} by offset", {"offset": deep}),
                (f"page at row {deep} by cursor", {"cursor": oldest_first}),
                (
                    "newest first, journey=welcome, by cursor",
                    {"sort": "-created_at", "journey": "welcome", "cursor": newest_first},
                ),
                ("status=failed, by cursor", {"status": "failed", "cursor": oldest_first}),
            ):
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    response = await http.get("/v1/messages", params={"limit": 50, **params})
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                print(f"{label:55s} median {statistics.median(times):7.1f} ms")
        await runtime.aclose()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.admin_url))
