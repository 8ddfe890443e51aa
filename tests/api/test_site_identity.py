"""A public write key cannot take over a customer: from a web page, an identify changes
contact addresses and consent only with `context.userHash`, the HMAC-SHA256 of its userId
under ORCHESTRATOR_SITE_IDENTITY_SECRET (orchestrator/events/site_identity.py,
docs/website-kpis.md). The calls are sent as analytics.js sends them (text/plain, the key
as the body's writeKey, from a listed origin); the hash is computed as a site's server would."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from prometheus_client import REGISTRY
from sqlmodel import select

from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Customer, Enrollment, Event
from tests.web.test_access import bearer, make_key

SECRET = "the-shop-servers-identity-secret-0123456789"
SITE = {"Origin": "https://shop.example", "Content-Type": "text/plain"}
TAKEOVER = {
    "email": "mallory@evil.example",
    "phone": "+14155550199",
    "whatsapp": "+14155550199",
    "sms_opt_in": False,
    "email_opt_out": True,
}
WITHHELD = ["email", "email_opt_out", "phone", "sms_opt_in", "whatsapp"]


def site_hash(user_id: str, secret: str = SECRET) -> str:
    """What the shop's server renders into a logged-in customer's page."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identify(key: str, message_id: str, traits: dict, user_hash: str | None = None, **ids) -> dict:
    context = {"library": {"name": "analytics.js", "version": "npm:next-1.84.3"}}
    if user_hash is not None:
        context["userHash"] = user_hash
    return {
        "type": "identify",
        **(ids or {"userId": "ann", "anonymousId": "ajs-anon-1"}),
        "messageId": message_id,
        "traits": traits,
        "context": context,
        "writeKey": key,
    }


def withheld_count() -> float:
    return REGISTRY.get_sample_value("orchestrator_site_traits_withheld_total") or 0.0


@pytest.fixture
async def keys(client, runtime):
    """The page's key; and Ann as the shop's server registered her (its own ingest key)."""
    runtime.settings.site_origins = ["https://shop.example"]
    runtime.settings.site_identity_secret = SECRET
    server = await make_key(runtime, "ingest")
    registered = {"email": "ann@example.com", "phone": "+14155550100", "sms_opt_in": True, "name": "Ann"}
    response = await client.post(
        "/v1/identify", json={"userId": "ann", "traits": registered, "messageId": "server-1"}, headers=bearer(server)
    )
    assert response.status_code == 200, response.text
    return await make_key(runtime, "site"), server


async def ann(runtime) -> tuple[Customer, dict[str, str]]:
    """Ann, and her current consent per channel."""
    async with runtime.sessions() as session:
        customer = (await session.exec(select(Customer).where(Customer.user_id == "ann"))).one()
        ledger = (
            await session.exec(select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id))
        ).all()
    return customer, {record.channel: record.status for record in ledger}


async def event(runtime, message_id: str) -> Event | None:
    async with runtime.sessions() as session:
        return (await session.exec(select(Event).where(Event.message_id == message_id))).one_or_none()


async def test_without_a_hash_addresses_and_consent_stay_other_traits_apply_and_it_is_counted(client, runtime, keys):
    site, _ = keys
    before = withheld_count()
    call = identify(site, "page-1", {**TAKEOVER, "name": "Ann B", "locale": "fr"})
    response = await client.post("/v1/i", content=json.dumps(call), headers=SITE)
    assert response.status_code == 200, response.text  # accepted: analytics.js would drop a 4xx
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    customer, consents = await ann(runtime)
    assert (customer.email, customer.phone, customer.whatsapp) == ("ann@example.com", "+14155550100", None)
    assert consents == {"sms": "opted_in"}  # no opt-out recorded, no e-mail opt-out
    assert (customer.locale, customer.traits["name"], customer.traits["email"]) == ("fr", "Ann B", "ann@example.com")
    stored = await event(runtime, "page-1")
    assert stored.withheld_traits == WITHHELD  # ops see what was not applied...
    assert stored.properties["email"] == "mallory@evil.example"  # ...and what was sent
    assert withheld_count() == before + 1
    timeline = await client.get("/v1/customers/ann/timeline", headers=bearer(await make_key(runtime, "ops")))
    [summary] = [entry["summary"] for entry in timeline.json()["items"] if "mallory" in entry["summary"]]
    assert summary.endswith(
        "(not applied, no identity verification: email, email_opt_out, phone, sms_opt_in, whatsapp)"
    )
    again = await client.post("/v1/i", content=json.dumps(call), headers=SITE)  # analytics.js retrying
    assert again.json()["duplicates"] == 1 and withheld_count() == before + 1


async def test_a_valid_hash_changes_addresses_and_consent(client, runtime, keys):
    site, _ = keys
    before = withheld_count()
    call = identify(site, "page-2", TAKEOVER, user_hash=site_hash("ann"))
    response = await client.post("/v1/i", content=json.dumps(call), headers=SITE)
    assert response.status_code == 200, response.text
    customer, consents = await ann(runtime)
    assert (customer.email, customer.phone, customer.whatsapp) == (
        "mallory@evil.example",
        "+14155550199",
        "+14155550199",
    )
    assert consents == {"sms": "opted_out", "email": "opted_out"}
    assert (await event(runtime, "page-2")).withheld_traits is None
    assert withheld_count() == before


async def test_a_wrong_hash_is_a_readable_403_naming_the_field_and_nothing_is_stored(client, runtime, keys):
    site, _ = keys
    wrong = (
        site_hash("bob"),  # another customer's
        site_hash("ann", "another-secret-of-the-same-length-0123456"),
        "not hex at all",
        12345,
    )
    for n, user_hash in enumerate(wrong):
        call = identify(site, f"wrong-{n}", TAKEOVER, user_hash=user_hash)
        response = await client.post("/v1/i", content=json.dumps(call), headers=SITE)
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith("context.userHash: not the HMAC-SHA256 of userId")
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
    batch = [identify(site, "batch-0", {"name": "Ann C"}), identify(site, "batch-1", TAKEOVER, user_hash="0" * 64)]
    response = await client.post("/v1/b", content=json.dumps({"batch": batch, "writeKey": site}), headers=SITE)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("batch[1].context.userHash: ")
    async with runtime.sessions() as session:
        assert [e.message_id for e in (await session.exec(select(Event))).all()] == ["server-1"]
    customer, _ = await ann(runtime)
    assert (customer.email, customer.traits["name"]) == ("ann@example.com", "Ann")


async def test_with_no_secret_set_no_page_changes_addresses_and_a_hash_cannot_be_checked(client, runtime, keys):
    site, _ = keys
    runtime.settings.site_identity_secret = None  # the default
    response = await client.post("/v1/i", content=json.dumps(identify(site, "unset-1", TAKEOVER)), headers=SITE)
    assert response.status_code == 200
    assert (await event(runtime, "unset-1")).withheld_traits == WITHHELD
    hashed = identify(site, "unset-2", TAKEOVER, user_hash=site_hash("ann"))
    response = await client.post("/v1/i", content=json.dumps(hashed), headers=SITE)
    assert response.status_code == 403
    assert "ORCHESTRATOR_SITE_IDENTITY_SECRET is not set" in response.json()["detail"]
    customer, consents = await ann(runtime)
    assert (customer.email, consents) == ("ann@example.com", {"sms": "opted_in"})


async def test_a_batch_from_a_page_withholds_per_call_and_keeps_the_rest(client, runtime, keys):
    site, _ = keys
    batch = [
        {"type": "page", "anonymousId": "ajs-anon-1", "messageId": "b-page", "name": "Boots"},
        identify(site, "b-plain", TAKEOVER),
        {"type": "track", "userId": "ann", "event": "Product Viewed", "messageId": "b-track"},
    ]
    response = await client.post("/v1/b", content=json.dumps({"batch": batch, "writeKey": site}), headers=SITE)
    assert response.status_code == 200 and response.json()["accepted"] == 3
    assert [(await event(runtime, m)).withheld_traits for m in ("b-page", "b-plain", "b-track")] == [
        None,
        WITHHELD,
        None,
    ]
    customer, _ = await ann(runtime)
    assert customer.email == "ann@example.com"


async def test_an_anonymous_identify_from_a_page_is_unaffected(client, runtime, keys):
    site, _ = keys
    before = withheld_count()
    call = identify(site, "anon-1", {"email": "visitor@example.com"}, anonymousId="ajs-anon-2")
    response = await client.post("/v1/i", content=json.dumps(call), headers=SITE)
    assert response.status_code == 200
    stored = await event(runtime, "anon-1")
    assert (stored.customer_id, stored.withheld_traits, withheld_count()) == (None, None, before)


async def test_server_calls_are_unaffected_and_the_page_key_cannot_make_them(client, runtime, keys):
    site, server = keys
    call = {"userId": "ann", "traits": TAKEOVER, "messageId": "server-2"}  # no hash: a server is trusted
    assert (await client.post("/v1/identify", json=call, headers=bearer(server))).status_code == 200
    customer, consents = await ann(runtime)
    assert (customer.email, consents) == ("mallory@evil.example", {"sms": "opted_out", "email": "opted_out"})
    assert (await event(runtime, "server-2")).withheld_traits is None
    # The page's key sent to the server paths instead: refused, so the check cannot be gone around.
    for path in ("/v1/identify", "/v1/batch"):
        body = {"batch": [{"type": "identify", **call}]} if path == "/v1/batch" else call
        refused = await client.post(path, json=body, headers=bearer(site))
        assert refused.status_code == 403, refused.text
        assert "has role 'site'" in refused.json()["detail"]


def track(key: str, message_id: str, event_name: str, user_hash: str | None = None) -> dict:
    call = identify(key, message_id, {}, user_hash)
    del call["traits"]
    return {**call, "type": "track", "event": event_name, "properties": {"cart_value": 80}}


async def enrollments_of_ann(runtime) -> list[str]:
    customer, _ = await ann(runtime)
    async with runtime.sessions() as session:
        rows = await session.exec(select(Enrollment.journey_id).where(Enrollment.customer_id == customer.id))
        return list(rows.all())


async def test_a_track_without_a_hash_is_stored_but_moves_no_journey(client, runtime, keys):
    """Otherwise anyone with the page's key could have any customer sent the abandoned-cart SMS."""
    site, _ = keys
    response = await client.post(
        "/v1/t", content=json.dumps(track(site, "page-cart-1", "Cart Abandoned")), headers=SITE
    )
    assert response.status_code == 200, response.text  # accepted: the site's analytics still count it
    stored = await event(runtime, "page-cart-1")
    assert (stored.name, stored.unverified) == ("Cart Abandoned", True)
    assert "abandoned-cart" not in await enrollments_of_ann(runtime)
    timeline = await client.get("/v1/customers/ann/timeline", headers=bearer(await make_key(runtime, "ops")))
    [summary] = [e["summary"] for e in timeline.json()["items"] if "Cart Abandoned" in e["summary"]]
    assert summary.endswith("(no journey reacted, no identity verification)")


async def test_a_track_with_a_valid_hash_starts_the_journey_and_a_wrong_one_is_refused(client, runtime, keys):
    site, _ = keys
    wrong = track(site, "page-cart-2", "Cart Abandoned", user_hash=site_hash("bob"))
    refused = await client.post("/v1/t", content=json.dumps(wrong), headers=SITE)
    assert refused.status_code == 403 and "context.userHash" in refused.json()["detail"]
    assert await event(runtime, "page-cart-2") is None
    verified = track(site, "page-cart-3", "Cart Abandoned", user_hash=site_hash("ann"))
    response = await client.post("/v1/t", content=json.dumps(verified), headers=SITE)
    assert response.status_code == 200, response.text
    assert (await event(runtime, "page-cart-3")).unverified is None
    assert "abandoned-cart" in await enrollments_of_ann(runtime)


async def test_while_the_secret_rotates_pages_signed_with_the_previous_one_still_verify(client, runtime, keys):
    site, _ = keys
    runtime.settings.site_identity_secret = "the-shops-new-identity-secret-0123456789ab"
    runtime.settings.site_identity_previous_secret = SECRET  # pages rendered before the switch
    old_page = track(site, "page-cart-4", "Cart Abandoned", user_hash=site_hash("ann"))
    assert (await client.post("/v1/t", content=json.dumps(old_page), headers=SITE)).status_code == 200
    assert "abandoned-cart" in await enrollments_of_ann(runtime)
    runtime.settings.site_identity_previous_secret = None  # the rotation is over
    older = track(site, "page-cart-5", "Cart Abandoned", user_hash=site_hash("ann"))
    assert (await client.post("/v1/t", content=json.dumps(older), headers=SITE)).status_code == 403
