"""The NPS journey end to end over real HTTP: our service and the fake Twilio on real
ports, the real `twilio` SDK sending, signed status callbacks and a signed inbound reply."""

from __future__ import annotations

import time

import httpx
from twilio.request_validator import RequestValidator

from orchestrator.api.app import create_app
from orchestrator.fakes.server import free_port, serve_in_thread
from tests.conftest import START, _reset, make_settings
from tests.providers import fake_twilio
from tests.webhooks.twilio_signing import inbound_form


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


async def test_nps_question_reply_and_thanks(database_url):
    await _reset(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake_twilio() as twilio:
        settings = make_settings(
            database_url,
            sms_provider="twilio",
            twilio_api_base_url=twilio.url,
            fake_twilio_auth_token=twilio.auth_token,
            public_base_url=base,
            port=port,
            simulated_clock_start=START.isoformat(),
            worker_poll_seconds=0.1,
        )
        with serve_in_thread(create_app(settings), port=port), httpx.Client(base_url=base) as api:
            api.post("/v1/identify", json={"userId": "rosa", "traits": {"phone": "+14155550190", "sms_opt_in": True}})
            api.post("/v1/track", json={"userId": "rosa", "event": "Order Delivered", "messageId": "d1"})
            time.sleep(0.3)  # the worker loop enrolls her
            api.post("/v1/admin/clock/advance", json={"seconds": 7 * 86400})
            [question] = eventually(twilio.witnessed)
            assert question["to"] == "+14155550190" and question["body"].startswith("How likely")
            # The fake's signed status callbacks reach our webhook and mark it delivered.
            delivered = eventually(lambda: api.get("/v1/messages").json()["items"][0]["status"] == "delivered")
            assert delivered
            # Twilio prices a message once sent; the status callback made us read it back.
            priced = api.get("/v1/messages").json()["items"][0]
            assert (float(priced["cost"]), priced["cost_currency"]) == (0.0079, "USD")

            form = inbound_form("SMreply1", "+14155550190", "9")
            signature = RequestValidator(twilio.auth_token).compute_signature(base + "/webhooks/twilio/inbound", form)
            reply = api.post("/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
            assert reply.status_code == 200
            api.post("/v1/admin/clock/advance", json={"seconds": 1})
            sent = eventually(lambda: len(twilio.witnessed()) == 2 and twilio.witnessed())
            assert sent and "review" in sent[1]["body"]
            [enrollment] = api.get("/v1/customers/rosa").json()["enrollments"]
            assert enrollment["status"] == "completed"
