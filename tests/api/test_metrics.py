"""`GET /metrics`: Prometheus text that parses, with the expected families and values."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from orchestrator.channels.base import Channel, ChannelAdapter, OutboundMessage, SendResult
from orchestrator.channels.local import LocalEmailAdapter, LocalWhatsAppAdapter
from orchestrator.channels.registry import ChannelRegistry
from orchestrator.engine.worker import run_due_enrollments
from tests.api.test_launch_journeys import HOUR, identify, track

FAMILIES = {
    "orchestrator_events_ingested": "counter",
    "orchestrator_events_duplicate": "counter",
    "orchestrator_provider_send_seconds": "histogram",
    "orchestrator_send_errors": "counter",
    "orchestrator_enrollments": "gauge",
    "orchestrator_messages": "gauge",
    "orchestrator_due_work_lag_seconds": "gauge",
}


class RejectingSms(ChannelAdapter):
    channel = Channel.sms
    provider = "rejecting"

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult.permanent("21211", "invalid 'To' phone number")


async def scrape(client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value}, and a check that every family is there."""
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    for name, kind in FAMILIES.items():
        assert families[name].type == kind, name
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_after_some_traffic(client, runtime, drain):
    runtime.channels = ChannelRegistry(
        {Channel.email: LocalEmailAdapter(), Channel.sms: RejectingSms(), Channel.whatsapp: LocalWhatsAppAdapter()}
    )
    before = await scrape(client)  # counters live as long as the process: compare differences

    await identify(client, "ann", email="ann@example.com")
    await track(client, "ann", "Signed Up")
    await client.post("/v1/track", json={"userId": "ann", "event": "Product Viewed", "messageId": "m-1"})
    await client.post("/v1/track", json={"userId": "ann", "event": "Product Viewed", "messageId": "m-1"})
    await identify(client, "sam", phone="+14155550100", sms_opt_in=True)
    await track(client, "sam", "Cart Abandoned")
    await drain()
    runtime.clock.advance(timedelta(seconds=HOUR + 90))  # the cart reminder is due 90 s ago, nobody ran it
    lagging = await scrape(client)
    assert value(lagging, "orchestrator_due_work_lag_seconds", work="enrollments") == 90
    assert value(lagging, "orchestrator_due_work_lag_seconds", work="messages") == 0
    await drain()
    after = await scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("orchestrator_events_ingested_total", type="identify") == 2
    assert grew("orchestrator_events_ingested_total", type="track") == 3
    assert grew("orchestrator_events_duplicate_total", type="track") == 1
    assert grew("orchestrator_provider_send_seconds_count", channel="email", provider="local") == 1
    assert grew("orchestrator_provider_send_seconds_count", channel="sms", provider="rejecting") == 1
    assert (
        grew(
            "orchestrator_send_errors_total",
            channel="sms",
            provider="rejecting",
            outcome="permanent_failure",
            error_code="21211",
        )
        == 1
    )
    assert value(after, "orchestrator_messages", channel="email", status="sent") == 1
    assert value(after, "orchestrator_messages", channel="sms", status="failed") == 1
    assert value(after, "orchestrator_enrollments", journey="welcome", status="completed") == 1
    assert value(after, "orchestrator_enrollments", journey="abandoned-cart", status="completed") == 1
    assert value(after, "orchestrator_due_work_lag_seconds", work="enrollments") == 0


async def test_queued_messages_waiting_count_as_lag(client, runtime, drain):
    await identify(client, "ann", email="ann@example.com")
    await track(client, "ann", "Signed Up")
    await run_due_enrollments(runtime)  # the journey step queues the e-mail; nothing dispatches it
    runtime.clock.advance(timedelta(seconds=30))
    samples = await scrape(client)
    assert value(samples, "orchestrator_messages", channel="email", status="queued") == 1
    assert value(samples, "orchestrator_due_work_lag_seconds", work="messages") == 30
