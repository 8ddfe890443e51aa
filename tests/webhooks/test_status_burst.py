"""A burst of SMS whose status callbacks partly never arrive: the fake Twilio posts to our
real webhook (its own server and runtime on the same database) and loses every third
callback for good. The reconciler fetches what the callbacks did not bring: afterwards no
message is stuck at `sent`."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock
from orchestrator.engine.dispatch import dispatch_queued_messages
from orchestrator.engine.reconcile import reconcile_round
from orchestrator.fakes.server import free_port, serve_in_thread
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer, Message
from tests.conftest import _reset, make_settings
from tests.providers import fake_twilio

BURST = 300


async def statuses(runtime) -> Counter:
    async with runtime.sessions() as session:
        return Counter((await session.exec(select(Message.status))).all())


async def test_lost_status_callbacks_leave_no_message_stuck_at_sent(database_url):
    await _reset(database_url)
    port = free_port()
    with fake_twilio(drop_status_callbacks_every=3) as twilio:
        settings = make_settings(
            database_url,
            sms_provider="twilio",
            twilio_api_base_url=twilio.url,
            fake_twilio_auth_token=twilio.auth_token,
            public_base_url=f"http://127.0.0.1:{port}",
            sms_rate_per_second=10_000,
            reconcile_status_after_seconds=600,
            reconcile_lookups_per_second=1000,
            reconcile_batch_size=BURST,
        )
        webhook_app = create_app(settings, run_worker=False)
        runtime = await build_runtime(settings, clock=SimulatedClock(datetime.now(timezone.utc)))
        try:
            with serve_in_thread(webhook_app, port=port):
                now = runtime.clock.now()
                async with runtime.sessions() as session, session.begin():
                    for i in range(BURST):
                        customer = Customer(user_id=f"c{i}", phone=f"+1415{i:07d}", created_at=now, updated_at=now)
                        session.add(customer)
                        await session.flush()
                        session.add(
                            Message(
                                send_key=f"burst:{i}",
                                customer_id=customer.id,
                                channel="sms",
                                provider="twilio",
                                status="queued",
                                to_address=customer.phone,
                                body=f"Flash sale {i}",
                                created_at=now,
                                updated_at=now,
                                next_attempt_at=now,
                            )
                        )
                while await dispatch_queued_messages(runtime):
                    pass
                # Until every callback the fake meant to post has been posted or lost.
                deadline, before, previous = time.monotonic() + 60, None, None
                while before is None or before != previous or not before["delivered"]:
                    assert time.monotonic() < deadline, before
                    previous = before
                    await asyncio.sleep(1.0)
                    before = await statuses(runtime)

                runtime.clock.advance(timedelta(seconds=601))
                changed = 0
                for _ in range(5):  # a round asks at most a batch; the fake may answer slowly
                    changed += (await reconcile_round(runtime)).statuses_changed
                    if not (await statuses(runtime))["sent"]:
                        break
                    runtime.clock.advance(timedelta(seconds=3600))
                after = await statuses(runtime)
        finally:
            await runtime.aclose()

    assert before["sent"] > 0  # the lost callbacks did leave messages at `sent`
    assert changed > 0
    assert after == Counter({"delivered": BURST})
