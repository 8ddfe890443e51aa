"""The abandoned-cart reminder as a Celery user would write it: the baseline of
bench/end_to_end.py.

When a cart is abandoned, the web app calls

    remind_abandoned_cart.apply_async((user_id, phone, abandoned_at), countdown=3600)

and one hour later a worker checks PostgreSQL for an order since then (our `events` table,
the same database the orchestrator uses) and, if there is none, texts a 15% code through
the official `twilio` SDK's synchronous client (`Client.messages.create`). The SDK's HTTP
client is subclassed only to point it at the local fake Twilio, as our adapter does.

Configured from the environment (set by bench/end_to_end.py):

    BENCH_CELERY_BROKER      amqp://guest:guest@127.0.0.1:5672//  (RabbitMQ)
    BENCH_CELERY_QUEUE       a queue of the run's own
    BENCH_CELERY_ACKS_LATE   "1": task_acks_late + task_reject_on_worker_lost
    BENCH_DATABASE_URL       postgresql://…
    BENCH_TWILIO_URL         http://127.0.0.1:<port> of the fake Twilio

Everything else is Celery's default: prefork pool, early acknowledgement, prefetch
multiplier 4, no result backend (results ignored, as for a fire-and-forget task).

    .venv/bin/celery -A bench.celery_baseline worker --concurrency 4
"""

from __future__ import annotations

import os
import re

from celery import Celery

from orchestrator.channels.configure import FAKE_TWILIO_ACCOUNT_SID, FAKE_TWILIO_FROM

TWILIO_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com")
ORDER_CHECK = """
    SELECT 1 FROM events e JOIN customers c ON c.id = e.customer_id
    WHERE c.user_id = %s AND e.type = 'track' AND e.name = 'Order Completed' AND e.received_at >= %s
    LIMIT 1
"""

app = Celery("bench_cart", broker=os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "bench_cart"),
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if os.environ.get("BENCH_CELERY_ACKS_LATE") == "1":
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True)

_database = None
_twilio = None


def database():
    """One connection per pool process, opened on first use (after the fork)."""
    global _database
    if _database is None or _database.closed:
        import psycopg

        _database = psycopg.connect(os.environ["BENCH_DATABASE_URL"], autocommit=True)
    return _database


def twilio():
    global _twilio
    if _twilio is None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        base = os.environ["BENCH_TWILIO_URL"].rstrip("/")

        class RedirectingHttpClient(TwilioHttpClient):
            """The SDK's requests-based client, sending to the fake instead of api.twilio.com."""

            def request(self, method, url, *args, **kwargs):
                return super().request(method, TWILIO_ORIGIN.sub(base, url, count=1), *args, **kwargs)

        _twilio = Client(
            FAKE_TWILIO_ACCOUNT_SID,
            os.environ["BENCH_TWILIO_AUTH_TOKEN"],  # the fake's, per run
            http_client=RedirectingHttpClient(pool_connections=True, timeout=10),
        )
    return _twilio


@app.task(name="cart.remind_abandoned_cart")
def remind_abandoned_cart(user_id: str, phone: str, abandoned_at: str) -> str:
    if database().execute(ORDER_CHECK, (user_id, abandoned_at)).fetchone():
        return "ordered"
    twilio().messages.create(
        to=phone,
        from_=FAKE_TWILIO_FROM,
        body=f"You left something in your cart! Use code CART15-{user_id.upper()} for 15% off in the next "
        f"72 hours. Reply STOP to opt out.",
    )
    return "sent"
