"""The welcome e-mail end to end over real HTTP: our service with the bundled fake SendGrid,
whose Event Webhook calls are signed with the key the service generated and verified by our
webhook under the default settings."""

from __future__ import annotations

import httpx

from orchestrator.api.app import create_app
from orchestrator.fakes.server import free_port, serve_in_thread
from tests.acceptance.test_nps_through_fake_twilio import eventually
from tests.conftest import START, _reset, make_settings


async def test_the_fake_sendgrids_signed_events_mark_the_welcome_email_delivered(database_url):
    await _reset(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database_url,
        email_provider="sendgrid",
        public_base_url=base,
        port=port,
        simulated_clock_start=START.isoformat(),
        worker_poll_seconds=0.1,
    )
    assert settings.sendgrid_webhook_verify_signatures and settings.sendgrid_webhook_public_key is None
    app = create_app(settings)
    with serve_in_thread(app, port=port), httpx.Client(base_url=base, timeout=60) as api:  # a loaded machine
        api.post("/v1/identify", json={"userId": "lea", "traits": {"email": "lea@example.com"}}).raise_for_status()
        api.post("/v1/track", json={"userId": "lea", "event": "Signed Up", "messageId": "s1"}).raise_for_status()
        delivered = eventually(
            lambda: [m for m in api.get("/v1/messages").json()["items"] if m["status"] == "delivered"], timeout=60
        )
        assert delivered and delivered[0]["channel"] == "email", api.get("/v1/messages").json()
        # An unsigned copy of the same kind of call is refused.
        forged = [
            {"event": "bounce", "sg_event_id": "x", "send_key": delivered[0]["send_key"], "email": "lea@example.com"}
        ]
        assert api.post("/webhooks/sendgrid/events", json=forged).status_code == 403
