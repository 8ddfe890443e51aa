"""The official Segment client (`segment-analytics-python`) pointed at a running service, as
a user's application would: every call type, its Basic-auth write key, its gzip bodies."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from segment.analytics import Client
from segment.analytics.request import APIError
from sqlmodel import select

from orchestrator.api.app import create_app
from orchestrator.storage.models import Customer, Event, IdentityLink
from tests.web.test_access import make_key


@contextmanager
def serving(app) -> Iterator[str]:
    """uvicorn on a free port in a thread; stopped (and its port closed) on the way out."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
    assert not thread.is_alive()


@pytest.fixture
def service(runtime) -> Iterator[str]:
    # The served app builds its own runtime on the same database, in uvicorn's thread and loop.
    with serving(create_app(runtime.settings, run_worker=False)) as url:
        yield url


async def stored_events(runtime) -> list[Event]:
    async with runtime.sessions() as session:
        return list((await session.exec(select(Event).order_by(Event.id))).all())


async def test_a_batch_with_every_segment_call_type_is_stored_whole(service, runtime):
    errors = []
    analytics = Client(
        write_key="any-key-while-open", host=service, on_error=lambda error, batch: errors.append(error), max_retries=0
    )
    analytics.identify("ann", {"email": "ann@example.com", "sms_opt_in": True}, anonymous_id="visitor-1")
    analytics.track("ann", "Order Completed", {"revenue": 42.5})
    analytics.page(
        anonymous_id="visitor-2",
        category="Docs",
        name="Pricing",
        properties={"url": "https://shop.example/pricing", "referrer": "https://search.example/"},
    )
    analytics.screen("ann", name="Cart", properties={"items": 2})
    analytics.group("ann", "acme-inc", {"plan": "enterprise"})
    analytics.alias("visitor-2", "ann")
    analytics.flush()  # one batch, as the client queues and sends them
    analytics.shutdown()
    assert errors == []

    events = await stored_events(runtime)
    assert [e.type for e in events] == ["identify", "track", "page", "screen", "group", "alias"]
    page = events[2]
    assert page.customer_id is None and page.anonymous_id == "visitor-2"
    assert page.name == "Pricing"
    assert page.properties == {
        "url": "https://shop.example/pricing",
        "referrer": "https://search.example/",
        "category": "Docs",
    }
    assert page.context["library"]["name"] == "analytics-python"
    assert events[4].name == "acme-inc" and events[4].properties == {"plan": "enterprise"}
    async with runtime.sessions() as session:
        ann = (await session.exec(select(Customer).where(Customer.user_id == "ann"))).one()
        links = {link.anonymous_id: link.customer_id for link in (await session.exec(select(IdentityLink))).all()}
    assert ann.email == "ann@example.com" and ann.traits["sms_opt_in"] is True
    assert links == {"visitor-1": ann.id, "visitor-2": ann.id}
    assert {e.customer_id for e in events if e.type != "page"} == {ann.id}


async def test_the_write_key_authenticates_over_basic_and_gzip_bodies_are_read(service, runtime):
    ingest_key = await make_key(runtime, "ingest")
    ops_key = await make_key(runtime, "ops")
    analytics = Client(write_key=ingest_key, host=service, gzip=True, sync_mode=True, max_retries=0)
    analytics.track("ann", "Signed Up", {"plan": "pro"})
    analytics.page("ann", name="Home", properties={"url": "https://shop.example/"})
    assert [(e.type, e.name) for e in await stored_events(runtime)] == [("track", "Signed Up"), ("page", "Home")]

    for wrong_key, status in (("not-a-key", 401), (ops_key, 403)):
        refused = Client(write_key=wrong_key, host=service, gzip=True, sync_mode=True, max_retries=0)
        with pytest.raises(APIError) as error:
            refused.track("ann", "Refused")
        assert error.value.status == status
    assert len(await stored_events(runtime)) == 2
