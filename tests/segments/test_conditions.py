"""Each kind of segment condition, compiled to SQL and run on hand-built customers.

Now is START (2026-03-02 17:00 UTC).

    ann  fr-FR, Europe/Paris; plan vip, age 34, newsletter true; SMS opted in;
         orders 2026-02-01 (150) and 2026-02-20 (80); entered and converted in `welcome`
    bob  fr, Europe/Brussels; plan basic, age "29"; SMS opted in, then out;
         one order 2025-06-01 (500), nothing since
    cho  fro (not French), America/New_York; e-mail opted out; order 2026-01-10 (50);
         page view yesterday; a conversion credited to `post-purchase` 2026-01-10
    dee  en-US, no time zone; newsletter "true" (text, not a JSON true); no events at all
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.segments.builders import consent, conversion, customer, days_ago, enrollment, event, matching_user_ids


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc)


async def build_customers(session) -> None:
    ann = await customer(
        session, "ann", locale="fr-FR", timezone="Europe/Paris", traits={"plan": "vip", "age": 34, "newsletter": True}
    )
    bob = await customer(session, "bob", locale="fr", timezone="Europe/Brussels", traits={"plan": "basic", "age": "29"})
    cho = await customer(session, "cho", locale="fro", timezone="America/New_York")
    await customer(session, "dee", locale="en-US", traits={"newsletter": "true"})
    await consent(session, ann, "sms", "opted_in")
    await consent(session, bob, "sms", "opted_in", days_ago(10))
    await consent(session, bob, "sms", "opted_out", days_ago(5))
    await consent(session, cho, "email", "opted_out")
    await event(session, ann, "Order Completed", at("2026-02-01"), revenue=150)
    await event(session, ann, "Order Completed", at("2026-02-20"), revenue="80.00")
    await enrollment(session, ann, "welcome", at("2026-02-01"), converted=at("2026-02-02"))
    await event(session, bob, "Order Completed", at("2025-06-01"), revenue=500)
    await conversion(session, cho, "post-purchase", at("2026-01-10"))  # its order: 2026-01-10, revenue 10
    await event(session, cho, "Product Viewed", days_ago(1), kind="page")


CASES = [
    # traits
    ("trait: {name: plan, equals: vip}", ["ann"]),
    ("trait: {name: plan, in: [vip, basic]}", ["ann", "bob"]),
    ("trait: {name: plan, exists: true}", ["ann", "bob"]),
    ("trait: {name: plan, exists: false}", ["cho", "dee"]),
    ("trait: {name: age, compare: {at_least: 30}}", ["ann"]),
    ("trait: {name: age, compare: {greater_than: 20, less_than: 30}}", ["bob"]),  # "29" is a number too
    ("trait: {name: age, equals: 34}", ["ann"]),
    ("trait: {name: newsletter, equals: true}", ["ann"]),  # the text "true" is not a JSON true
    # consent, as the ledger's latest record says
    ("consent: {channel: sms}", ["ann"]),
    ("consent: {channel: sms, opted_in: false}", ["bob", "cho", "dee"]),
    ("consent: {channel: email}", ["ann", "bob", "dee"]),  # e-mail is opt-out
    # event counts and sums in a window
    ("event: {name: Order Completed}", ["ann", "bob", "cho"]),
    ("event: {name: Order Completed, within: 90d, count: {at_least: 2}}", ["ann"]),
    ("event: {name: Order Completed, since: start_of_year}", ["ann", "cho"]),
    ("event: {name: Order Completed, since: 2026-02-10}", ["ann"]),
    (
        "event: {name: Order Completed, since: start_of_year, sum: {property: revenue, compare: {greater_than: 200}}}",
        ["ann"],
    ),
    ("event: {name: Order Completed, sum: {property: revenue, compare: {greater_than: 200}}}", ["ann", "bob"]),
    ("event: {name: Order Completed, count: {equals: 0}}", ["dee"]),
    # last seen
    ("last_seen: {within: 7d}", ["cho"]),
    ("last_seen: {not_within: 60d}", ["bob", "dee"]),
    # locale and time zone
    ("locale: {prefix: fr}", ["ann", "bob"]),
    ("locale: {equals: FR-fr}", ["ann"]),
    ("timezone: {prefix: Europe/}", ["ann", "bob"]),
    ("timezone: {equals: America/New_York}", ["cho"]),
    # journey and conversion history
    ("journey: {id: welcome}", ["ann"]),
    ("journey: {id: welcome, converted: true}", ["ann"]),
    ("journey: {id: post-purchase, converted: true, within: 30d}", []),
    ("converted: {}", ["cho"]),  # conversions credited to a journey, not enrollments
    ("converted: {journey: post-purchase, since: start_of_year}", ["cho"]),
    # nesting
    (
        "all: [{locale: {prefix: fr}}, {consent: {channel: sms}}, {event: {name: Order Completed, since: start_of_year}}]",
        ["ann"],
    ),
    ("any: [{trait: {name: plan, equals: basic}}, {locale: {prefix: en}}]", ["bob", "dee"]),
    ("not: {locale: {prefix: fr}}", ["cho", "dee"]),
]


@pytest.mark.parametrize("where, expected", CASES, ids=[c[0][:60] for c in CASES])
async def test_condition(runtime, where, expected):
    async with runtime.sessions() as session, session.begin():
        await build_customers(session)
        assert await matching_user_ids(session, where) == expected


async def test_an_erased_customer_matches_no_segment(runtime):
    async with runtime.sessions() as session, session.begin():
        await build_customers(session)
        eve = await customer(session, "erased:5", erased_at=days_ago(1))
        await event(session, eve, "Order Completed", at("2026-02-01"), revenue=500)  # orders stay counted
        assert await matching_user_ids(session, "event: {name: Order Completed}") == ["ann", "bob", "cho"]
        assert await matching_user_ids(session, "not: {locale: {prefix: fr}}") == ["cho", "dee"]


async def test_a_pages_unverified_track_counts_in_no_segment(runtime):
    """A track from a web page that cannot prove its userId (events/site_identity.py) is
    stored, but it cannot put anyone in a segment, and so not in a broadcast's audience."""
    async with runtime.sessions() as session, session.begin():
        await build_customers(session)
        dee = await customer(session, "dee-2", locale="en-US")
        forged = await event(session, dee, "Order Completed", at("2026-02-01"), revenue=900)
        forged.unverified = True
        await session.flush()
        assert await matching_user_ids(session, "event: {name: Order Completed}") == ["ann", "bob", "cho"]
        assert (
            await matching_user_ids(
                session, "event: {name: Order Completed, sum: {property: revenue, compare: {at_least: 600}}}"
            )
            == []
        )
