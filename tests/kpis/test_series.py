"""`GET /v1/kpis/series`: messages per channel and hour or day of a chosen time zone, on
both databases, with exact bucket counts around a zone's midnight and a DST change; from
the hourly rollup (zones whose offset is whole hours) and counted live (the others)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.kpis.series import buckets
from orchestrator.storage.models import Customer, Message
from tests.conftest import START, refresh_kpis_as_the_worker_does

PARIS = "Europe/Paris"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


async def add_messages(runtime, *rows: tuple[str, str, str]) -> None:
    """(UTC moment, channel, status) → one journey message created then; sent unless skipped,
    delivered when so."""
    async with runtime.sessions() as session, session.begin():
        person = Customer(user_id="ana", created_at=START, updated_at=START)
        session.add(person)
        await session.flush()
        for n, (moment, channel, status) in enumerate(rows):
            created = at(moment)
            session.add(
                Message(
                    send_key=f"k{n}",
                    customer_id=person.id,
                    journey_id="welcome",
                    step_id="hello",
                    channel=channel,
                    template="hello",
                    status=status,
                    created_at=created,
                    sent_at=None if status == "skipped" else created,
                    delivered_at=created if status == "delivered" else None,
                    updated_at=created,
                )
            )


async def series(client, **params) -> dict:
    response = await client.get("/v1/kpis/series", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_days_and_hours_around_paris_midnight(client, runtime):
    runtime.clock.set(at("2026-03-05T12:00:00+00:00"))
    await add_messages(
        runtime,
        ("2026-03-02T22:30:00+00:00", "sms", "delivered"),  # 23:30 in Paris, 2 March
        ("2026-03-02T23:10:00+00:00", "sms", "sent"),  # 00:10 in Paris, 3 March
        ("2026-03-02T23:50:00+00:00", "sms", "failed"),  # 00:50 in Paris
        ("2026-03-02T23:59:59+00:00", "email", "delivered"),  # 00:59:59 in Paris
        ("2026-03-03T00:00:00+00:00", "email", "delivered"),  # 01:00 in Paris, 3 March in UTC too
    )
    await refresh_kpis_as_the_worker_does(client)
    paris_days = await series(
        client, **{"from": "2026-03-02T00:00:00+01:00", "to": "2026-03-04T00:00:00+01:00", "zone": PARIS}
    )
    assert paris_days["buckets"] == ["2026-03-02T00:00:00+01:00", "2026-03-03T00:00:00+01:00"]
    assert paris_days["channels"] == {
        "email": {"sent": [0, 2], "delivered": [0, 2], "failed": [0, 0]},
        "sms": {"sent": [1, 2], "delivered": [1, 0], "failed": [0, 1]},
    }
    utc_days = await series(client, **{"from": "2026-03-02", "to": "2026-03-04"})
    assert utc_days["buckets"] == ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]
    assert utc_days["channels"] == {
        "email": {"sent": [1, 1], "delivered": [1, 1], "failed": [0, 0]},
        "sms": {"sent": [3, 0], "delivered": [1, 0], "failed": [1, 0]},
    }
    # Counted from the messages: a zone half an hour off UTC, and a range starting mid-hour.
    kolkata = await series(
        client, **{"from": "2026-03-02T00:00:00+05:30", "to": "2026-03-04T00:00:00+05:30", "zone": "Asia/Kolkata"}
    )
    assert kolkata["buckets"] == ["2026-03-02T00:00:00+05:30", "2026-03-03T00:00:00+05:30"]
    assert kolkata["channels"] == {
        "email": {"sent": [0, 2], "delivered": [0, 2], "failed": [0, 0]},
        "sms": {"sent": [0, 3], "delivered": [0, 1], "failed": [0, 1]},
    }
    mid_hour = await series(
        client, **{"from": "2026-03-02T22:07:00+00:00", "to": "2026-03-02T23:55:00+00:00", "granularity": "hour"}
    )
    assert mid_hour["buckets"] == ["2026-03-02T22:07:00Z", "2026-03-02T23:00:00Z"]
    assert mid_hour["channels"] == {"sms": {"sent": [1, 2], "delivered": [1, 0], "failed": [0, 1]}}

    hours = await series(
        client,
        **{
            "from": "2026-03-02T23:00:00+01:00",
            "to": "2026-03-03T02:00:00+01:00",
            "zone": PARIS,
            "granularity": "hour",
        },
    )
    assert hours["buckets"] == ["2026-03-02T23:00:00+01:00", "2026-03-03T00:00:00+01:00", "2026-03-03T01:00:00+01:00"]
    assert hours["channels"]["sms"]["sent"] == [1, 2, 0]
    assert hours["channels"]["email"]["delivered"] == [0, 1, 1]


async def test_the_repeated_hour_of_a_dst_change_is_two_buckets(client, runtime):
    # 25 October 2026: Paris goes from 03:00 CEST back to 02:00 CET at 01:00 UTC.
    runtime.clock.set(at("2026-10-27T12:00:00+00:00"))
    await add_messages(
        runtime,
        ("2026-10-25T00:30:00+00:00", "sms", "sent"),  # 02:30 CEST
        ("2026-10-25T01:30:00+00:00", "sms", "sent"),  # 02:30 CET, an hour later
        ("2026-10-25T22:59:00+00:00", "sms", "sent"),  # 23:59 CET, still the 25th
    )
    await refresh_kpis_as_the_worker_does(client)
    day = {"from": "2026-10-25T00:00:00+02:00", "to": "2026-10-26T00:00:00+01:00", "zone": PARIS}
    hours = await series(client, **day, granularity="hour")
    assert len(hours["buckets"]) == 25
    assert hours["buckets"][2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert hours["channels"]["sms"]["sent"][2:4] == [1, 1] and sum(hours["channels"]["sms"]["sent"]) == 3
    days = await series(client, **day)
    assert days["buckets"] == ["2026-10-25T00:00:00+02:00"] and days["channels"]["sms"]["sent"] == [3]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"zone": "Mars/Olympus_Mons"}, "zone"),
        ({"zone": "../../etc/passwd"}, "zone"),
        ({"granularity": "minute"}, "granularity"),
        ({"granularity": "hour", "to": "2027-01-01"}, "to"),
        ({"to": "2026-02-01"}, "to"),
    ],
)
async def test_a_bad_zone_granularity_or_range_is_a_422_naming_it(client, params, field):
    response = await client.get("/v1/kpis/series", params={"from": "2026-03-01", "to": "2026-03-02", **params})
    assert response.status_code == 422, response.text
    assert field in {error["loc"][-1] for error in response.json()["detail"]}


def test_a_spring_forward_day_has_23_hours():
    from zoneinfo import ZoneInfo

    since, until = at("2026-03-29T00:00:00+01:00"), at("2026-03-30T00:00:00+02:00")
    spans = buckets(since, until, "hour", ZoneInfo(PARIS))
    assert len(spans) == 23 and [s.label.hour for s in spans[:3]] == [0, 1, 3]
    assert spans[0].start == since and spans[-1].end == until
    assert buckets(since, until, "day", ZoneInfo(PARIS))[0].end == until - timedelta(0)
