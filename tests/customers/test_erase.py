"""Export and erase, through real journeys against the fake Twilio, on both databases: the
export holds everything, an erase leaves no personal data but every aggregate, and an erased
address is never messaged again, whoever brings it back."""

from __future__ import annotations

import hashlib
import io
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, func, select

from orchestrator.api.app import create_app
from orchestrator.auth.keys import create_key
from orchestrator.customers.imports import ImportSource, import_customers
from orchestrator.events.schemas import IdentifyCall, PageCall, TrackCall
from orchestrator.storage.feedback_models import Consent, Conversion, MessageStatusEvent
from orchestrator.storage.models import Customer, ErasedAddress, Event, IdentityLink, Message
from tests.engine.test_dispatch import later, messages, runtime_on_providers, send_events, smtp, twilio

__all__ = ["runtime_on_providers", "smtp", "twilio"]  # fixtures, shared with the dispatch tests

SAM_PHONE = "+14155550100"


@asynccontextmanager
async def api(runtime):
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def sam_shops(runtime) -> None:
    """A visitor who signs in, abandons a cart, gets the SMS, orders, and clicks."""
    await send_events(runtime, PageCall(anonymousId="visitor-1", name="Home", properties={"ref": "ad"}))
    await send_events(
        runtime,
        IdentifyCall(
            userId="sam",
            anonymousId="visitor-1",
            traits={"phone": SAM_PHONE, "email": "sam@example.com", "sms_opt_in": True, "size": "M"},
            context={"ip": "203.0.113.7"},
        ),
        TrackCall(userId="sam", event="Cart Abandoned", properties={"items": ["red shoes"]}),
    )
    await later(runtime, hours=1)
    async with runtime.sessions() as session, session.begin():  # the click, as the short-link route records it
        [sms] = (await session.exec(select(Message).where(Message.channel == "sms"))).all()
        sms.first_clicked_at = runtime.clock.now()
        session.add(
            MessageStatusEvent(
                message_id=sms.id,
                source="short-link",
                status="click",
                detail={"url": "https://shop.example/cart"},
                occurred_at=runtime.clock.now(),
            )
        )
    await send_events(
        runtime,
        TrackCall(userId="sam", event="Order Completed", properties={"order_id": "A-1", "revenue": 42, "zip": "94110"}),
    )


async def test_the_export_holds_everything_about_the_person(runtime_on_providers):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with api(runtime) as http:
        answer = await http.get("/v1/customers/sam/export")
        missing = await http.get("/v1/customers/nobody/export")
    assert answer.status_code == 200 and missing.status_code == 404
    document = answer.json()
    assert document["customer"]["phone"] == SAM_PHONE and document["customer"]["traits"]["size"] == "M"
    assert [(c["channel"], c["status"], c["evidence"]["trait"]) for c in document["consents"]] == [
        ("sms", "opted_in", "sms_opt_in")
    ]
    assert [link["anonymous_id"] for link in document["identity_links"]] == ["visitor-1"]
    assert [e["name"] for e in document["anonymous_events"]] == ["Home"]
    assert {e["name"] for e in document["events"]} >= {"Cart Abandoned", "Order Completed"}
    assert {e["journey_id"] for e in document["enrollments"]} >= {"abandoned-cart", "post-purchase"}
    [sms] = [m for m in document["messages"] if m["channel"] == "sms"]
    assert sms["to_address"] == SAM_PHONE and "CART15-SAM" in sms["body"]
    assert [s["status"] for s in sms["statuses"]] == ["click"]
    assert document["clicks"] == [
        {"message_id": sms["id"], "at": document["clicks"][0]["at"], "url": "https://shop.example/cart"}
    ]
    assert [(c["order_key"], c["revenue"]) for c in document["conversions"]] == [("A-1", "42.00")]


async def aggregates(runtime) -> tuple:
    async with runtime.sessions() as session:
        by_status = (
            await session.exec(
                select(Message.channel, Message.status, Message.cost, Message.sent_at).order_by(col(Message.id))
            )
        ).all()
        revenue = (await session.exec(select(func.sum(Conversion.revenue)))).one()
        events = (await session.exec(select(func.count()).select_from(Event))).one()
    return [tuple(row) for row in by_status], revenue, events


async def test_an_erase_leaves_no_personal_data_and_every_aggregate(runtime_on_providers):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    before = await aggregates(runtime)
    async with api(runtime) as http:
        answer = await http.post("/v1/customers/sam/erase")
        assert answer.status_code == 200, answer.text
        assert (answer.json()["user_id"], answer.json()["tombstones"]) == ("sam", 2)  # the e-mail and the number
        assert (await http.get("/v1/customers/sam")).status_code == 404
    assert await aggregates(runtime) == before
    async with runtime.sessions() as session:
        [customer] = (await session.exec(select(Customer))).all()
        events = (await session.exec(select(Event))).all()
        sent = (await session.exec(select(Message))).all()
        consents = (await session.exec(select(Consent))).all()
        links = (await session.exec(select(IdentityLink))).all()
        statuses = (await session.exec(select(MessageStatusEvent))).all()
    assert customer.user_id == f"erased:{customer.id}" and customer.erased_at is not None
    assert (customer.email, customer.phone, customer.whatsapp, customer.locale, customer.traits) == (
        None,
        None,
        None,
        None,
        {},
    )
    assert links == [] and all(s.detail == {} for s in statuses)
    assert all(e.context is None and e.anonymous_id is None for e in events)
    [order] = [e for e in events if e.name == "Order Completed"]
    assert order.properties == {"order_id": "A-1", "revenue": 42}  # what revenue figures need, nothing else
    assert all(not e.properties for e in events if e.name != "Order Completed")
    assert all(m.to_address is None and m.body is None and m.subject is None and m.html is None for m in sent)
    assert [c.status for c in consents] == ["opted_in"] and consents[0].evidence == {"erased": True}
    everything = repr((customer, events, sent, consents)).lower()
    assert "4155550100" not in everything and "sam@example.com" not in everything


async def test_an_erased_address_is_never_messaged_again(runtime_on_providers, twilio):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with api(runtime) as http:
        assert (await http.post("/v1/customers/sam/erase")).status_code == 200
    twilio.clear()
    # the same number comes back under a new userId, written another way, with a fresh opt-in...
    await send_events(
        runtime, IdentifyCall(userId="sam-again", traits={"phone": "+1 (415) 555-0100", "sms_opt_in": True})
    )
    # ...and through an import with its consent column
    source = ImportSource(file="crm.csv", imported_at=runtime.clock.now())
    csv = f"userId,phone,consent_sms\nsam-imported,{SAM_PHONE},opted_in\n"
    report = await import_customers(runtime.sessions, io.BytesIO(csv.encode()), "csv", source)
    assert report.created == 1 and report.reject_count == 0
    await send_events(
        runtime,
        TrackCall(userId="sam-again", event="Cart Abandoned"),
        TrackCall(userId="sam-imported", event="Cart Abandoned"),
    )
    await later(runtime, hours=1)
    assert twilio.witnessed() == []
    refused = [m for m in await messages(runtime) if m.customer_id != 1 and m.channel == "sms"]
    assert [(m.status, m.status_reason) for m in refused] == [("skipped", "address erased on request (sms)")] * 2


async def test_a_different_number_is_still_messaged(runtime_on_providers, twilio):
    """The tombstone is one address, not a blanket refusal (the test above cannot pass vacuously)."""
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with api(runtime) as http:
        await http.post("/v1/customers/sam/erase")
    twilio.clear()
    await send_events(
        runtime,
        IdentifyCall(userId="kim", traits={"phone": "+14155550199", "sms_opt_in": True}),
        TrackCall(userId="kim", event="Cart Abandoned"),
    )
    await later(runtime, hours=1)
    assert [m["to"] for m in twilio.witnessed()] == ["+14155550199"]


async def test_the_tombstone_holds_a_keyed_hash_not_the_address(runtime_on_providers):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with api(runtime) as http:
        await http.post("/v1/customers/sam/erase")
    async with runtime.sessions() as session:
        hashes = (await session.exec(select(ErasedAddress.address_hash))).all()
    assert len(hashes) == 2 and all(len(h) == 64 and SAM_PHONE not in h for h in hashes)
    assert hashlib.sha256(f"phone:{SAM_PHONE}".encode()).hexdigest() not in hashes  # keyed, not a bare digest


async def test_an_erased_customer_cannot_hold_an_address_again(runtime_on_providers):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with api(runtime) as http:
        await http.post("/v1/customers/sam/erase")
    with pytest.raises(sa.exc.IntegrityError):
        async with runtime.sessions() as session, session.begin():
            await (await session.connection()).execute(sa.update(Customer.__table__).values(email="sam@example.com"))


async def test_only_an_admin_erases(runtime_on_providers):
    runtime = runtime_on_providers
    await sam_shops(runtime)
    async with runtime.sessions() as session, session.begin():
        keys = {
            role: (await create_key(session, role, role, runtime.clock.now())).key for role in ("admin", "marketer")
        }
    async with api(runtime) as http:
        refused = await http.post("/v1/customers/sam/erase", headers={"X-API-Key": keys["marketer"]})
        assert refused.status_code == 403
        exported = await http.get("/v1/customers/sam/export", headers={"X-API-Key": keys["marketer"]})
        assert exported.status_code == 200
        assert (await http.post("/v1/customers/nobody/erase", headers={"X-API-Key": keys["admin"]})).status_code == 404
        assert (await http.post("/v1/customers/sam/erase", headers={"X-API-Key": keys["admin"]})).status_code == 200
