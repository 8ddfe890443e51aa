"""Website KPIs through the API, exact figures on hand-built visits.

After the launch post-purchase journey's second-code SMS (a tracked short link), at `now`:

    lea      taps the SMS link, lands (url with our UTM + message reference) now, a product at
             +2 min, orders at +5 min                  sms / post-purchase, 2 pages, 120 s, converted
    walk-in  one page at +1 h, no referrer             direct, a bounce, 0 s
    searcher 3 pages at +2 h, +2 h 5, +2 h 10 from Google   referral / www.google.com, 600 s

Totals: 3 visits, 3 visitors, 6 pages (2.0 a visit), 1 bounce (33.33 %), 720 s (240.0 s a
visit), 1 converted (33.33 %).
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from segment.analytics import Client

from orchestrator.delivery.landing import message_reference
from orchestrator.kpis.distinct import RELATIVE_ERROR
from orchestrator.kpis.site_fold import refresh_visits
from orchestrator.storage.kpi_models import Visit
from orchestrator.storage.models import Customer, Message
from tests.api.test_segment_client import service  # noqa: F401 (a fixture)
from tests.conftest import refresh_kpis_as_the_worker_does
from tests.kpis.test_site_cells import D0, hand_built_visits, store_and_count
from tests.kpis.test_visits import page
from tests.webhooks.test_short_links import PHONE_BROWSER, SHORT, path_of, second_code_sms

MEASURES = ("visits", "visitors", "bounces", "pages", "seconds", "converted")
RATES = ("conversion_rate", "bounce_rate", "average_time_on_site", "pages_per_visit")


def figures(row: dict) -> tuple:
    return tuple(row[name] for name in MEASURES + RATES)


async def site(client, **params) -> dict:
    response = await client.get("/v1/kpis/site", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def three_visits(client, drain, runtime):
    message = await second_code_sms(client, drain, runtime)
    [link] = SHORT.findall(message.body)
    app_page = await client.get(path_of(link), headers={"user-agent": PHONE_BROWSER})
    landing = html.unescape(re.search(r'<a id="web" href="([^"]+)"', app_page.text).group(1))
    assert landing == (
        "https://shop.example/second-code?code=AGAIN10-LEA&size=38&utm_source=orchestrator&utm_medium=sms"
        "&utm_campaign=post-purchase&utm_content=post-purchase-second-code"
        f"&orc={message_reference(runtime.settings, message.id)}"
    )
    now = runtime.clock.now()
    await page(client, now, landing, user="lea")
    await page(client, now + timedelta(minutes=2), "https://shop.example/boots", user="lea")
    order = {"userId": "lea", "event": "Order Completed", "properties": {"order_id": "A-2", "revenue": 80}}
    response = await client.post("/v1/track", json={**order, "timestamp": (now + timedelta(minutes=5)).isoformat()})
    assert response.status_code == 200
    await page(client, now + timedelta(hours=1), anonymous="walk-in")
    for minutes in (0, 5, 10):
        at = now + timedelta(hours=2, minutes=minutes)
        await page(
            client, at, f"https://shop.example/{minutes}", anonymous="searcher", referrer="https://www.google.com/"
        )
    await refresh_kpis_as_the_worker_does(client)
    return now


async def test_a_visit_from_an_sms_link_converts_and_is_credited_to_its_journey(client, drain, runtime):
    now = await three_visits(client, drain, runtime)
    rows = {row["channel"]: row for row in (await site(client, group_by="channel"))["rows"]}
    assert figures(rows["sms"]) == (1, 1, 0, 2, 120, 1, 100.0, 0.0, 120.0, 2.0)
    assert figures(rows["direct"]) == (1, 1, 1, 1, 0, 0, 0.0, 100.0, 0.0, 1.0)
    assert figures(rows["referral"]) == (1, 1, 0, 3, 600, 0, 0.0, 0.0, 600.0, 3.0)
    [total] = (await site(client))["rows"]
    assert figures(total) == (3, 3, 1, 6, 720, 1, 33.33, 33.33, 240.0, 2.0)

    by_journey = (await site(client, group_by=["journey", "channel", "source"]))["rows"]
    credited = [(r["journey"], r["channel"], r["source"], r["visits"], r["converted"]) for r in by_journey]
    assert credited == [
        ("", "direct", "direct", 1, 0),
        ("", "referral", "www.google.com", 1, 0),
        ("post-purchase", "sms", "orchestrator", 1, 1),
    ]
    [journey] = (await site(client, journey="post-purchase"))["rows"]
    assert figures(journey) == figures(rows["sms"])

    day = now.date().isoformat()
    whole_day = await site(client, **{"from": day, "to": (now.date() + timedelta(days=1)).isoformat()}, group_by="day")
    assert [(r["day"], r["visits"], r["seconds"]) for r in whole_day["rows"]] == [(day, 3, 720)]  # from site_daily
    part = await site(
        client, **{"from": (now - timedelta(minutes=1)).isoformat(), "to": (now + timedelta(minutes=90)).isoformat()}
    )
    assert [(r["visits"], r["bounces"], r["converted"]) for r in part["rows"]] == [(2, 1, 1)]  # from visits


async def test_the_console_overview_shows_the_site_tiles_and_visits_per_channel(client, drain, runtime):
    await three_visits(client, drain, runtime)
    page_html = (await client.get("/")).text
    tiles = dict(re.findall(r'data-kpi="([^"]+)"><div class="label">[^<]*</div><div class="value">([^<]*)<', page_html))
    assert (tiles["Visits"], tiles["Site conversion rate"], tiles["Site bounce rate"]) == ("3", "33.3%", "33.3%")
    assert (tiles["Time on site"], tiles["Pages per visit"]) == ("240.00", "2.00")
    per_channel = page_html.split('id="visits-per-channel"')[1].split("</table>")[0]
    assert re.findall(r'<td class="day">(\w+)</td>', per_channel) == ["direct", "referral", "sms"]


async def test_page_calls_from_the_official_segment_sdk_make_a_visit(service, client, runtime):  # noqa: F811
    now = runtime.clock.now()
    errors = []
    analytics = Client(
        write_key="open", host=service, sync_mode=True, max_retries=0, on_error=lambda e, b: errors.append(e)
    )
    landing = "https://shop.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    analytics.page(anonymous_id="v-1", name="Home", properties={"url": landing, "path": "/"}, timestamp=now)
    analytics.page(
        anonymous_id="v-1",
        name="Boots",
        properties={"url": "https://shop.example/boots"},
        timestamp=now + timedelta(minutes=3),
    )
    # sync_mode: each call was sent (and committed) before it returned
    assert errors == []
    await refresh_visits(runtime)
    [row] = (await site(client, group_by=["channel", "source"]))["rows"]
    assert (row["channel"], row["source"], row["visits"], row["pages"], row["seconds"], row["bounces"]) == (
        "email",
        "newsletter",
        1,
        2,
        180,
        0,
    )


async def test_a_visit_from_a_broadcast_message_is_credited_to_the_broadcast(client, runtime):
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        customer = Customer(user_id="noa", created_at=now, updated_at=now)
        session.add(customer)
        await session.flush()
        message = Message(
            send_key=f"broadcast:black-friday:{customer.id}",
            customer_id=customer.id,
            journey_id="broadcast:black-friday",  # a broadcast sends through the journey it compiles to
            channel="sms",
            status="delivered",
            created_at=now,
            updated_at=now,
        )
        session.add(message)
        await session.flush()
        reference = message_reference(runtime.settings, message.id)
    await page(client, now, f"https://shop.example/black-friday?utm_source=orchestrator&orc={reference}", user="noa")
    await refresh_kpis_as_the_worker_does(client)
    rows = (await site(client, group_by=["broadcast", "journey", "channel"]))["rows"]
    assert [(r["broadcast"], r["journey"], r["channel"], r["visits"]) for r in rows] == [
        ("black-friday", "broadcast:black-friday", "sms", 1)
    ]
    [only] = (await site(client, broadcast="black-friday"))["rows"]
    assert only["visits"] == 1


# --- any range: whole days, whole hours and minutes, the same as counting the visits -------


def counted_directly(rows: list[dict], since, until, group_by: tuple[str, ...]) -> list[dict]:
    """The figures of the visits that started in [since, until), aggregated here, row by row."""
    column = {"channel": "channel", "source": "source", "journey": "journey_id", "day": "day"}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if (since is None or row["started_at"] >= since) and (until is None or row["started_at"] < until):
            key = tuple(
                row["started_at"].date().isoformat() if name == "day" else row[column[name]] for name in group_by
            )
            groups.setdefault(key, []).append(row)
    if not groups and not group_by:
        groups[()] = []
    return [
        {
            **dict(zip(group_by, key)),
            "visits": len(found),
            "visitors": len({r["visitor"] for r in found}),
            "bounces": sum(r["pages"] == 1 for r in found),
            "pages": sum(r["pages"] for r in found),
            "seconds": sum(r["seconds"] for r in found),
            "converted": sum(r["converted_at"] is not None for r in found),
        }
        for key, found in sorted(groups.items())
    ]


D1, D2 = D0 + timedelta(days=1), D0 + timedelta(days=2)
RANGES = [
    (D0, D0 + timedelta(days=3)),  # whole days
    (D0 + timedelta(hours=5, minutes=17), D2 + timedelta(hours=19, minutes=43)),  # days, hours and minutes
    (D0 + timedelta(hours=5, minutes=17), D0 + timedelta(hours=5, minutes=49)),  # inside one hour
    (D0 + timedelta(hours=5, minutes=17), D0 + timedelta(hours=9)),  # minutes, then whole hours
    (D1 + timedelta(hours=13), D1 + timedelta(hours=15)),  # whole hours only, from one on a visit's start
    (D1 + timedelta(hours=13, seconds=1), D1 + timedelta(hours=15, minutes=1)),  # just after that visit
    (D0 + timedelta(hours=23, minutes=59), D1 + timedelta(minutes=1)),  # across midnight
    (None, D1 + timedelta(hours=7, minutes=31)),
    (D1 + timedelta(hours=7, minutes=31), None),
    (None, None),
]


async def test_any_range_gives_the_figures_of_its_visits_counted_directly(client, runtime):
    rows = hand_built_visits()
    await store_and_count(runtime, rows)
    for since, until in RANGES:
        bounds = {"from": since.isoformat()} if since else {}
        bounds |= {"to": until.isoformat()} if until else {}
        for group_by in ((), ("channel",), ("day", "source")):
            answer = await site(client, **bounds, group_by=list(group_by))
            got = [{name: row[name] for name in (*group_by, *MEASURES)} for row in answer["rows"]]
            assert got == counted_directly(rows, since, until, group_by), (since, until, group_by)
    [whole] = (await site(client, **{"from": D0.isoformat(), "to": (D0 + timedelta(days=3)).isoformat()}))["rows"]
    assert (whole["visits"], whole["visitors"]) == (116, 23)  # each visitor once over the three days


async def test_a_visitor_on_two_days_and_from_two_sources_counts_once(client, runtime):
    def visit(at: datetime, channel: str) -> dict:
        return dict(visitor="c:7", started_at=at, ended_at=at, seconds=0, pages=1, channel=channel, source=channel)

    await store_and_count(
        runtime,
        [visit(D0 + timedelta(hours=9), "direct"), visit(D1 + timedelta(hours=9, minutes=3), "referral")],
    )
    ranges = [(D0, D2), (D0 + timedelta(hours=8, minutes=59), D1 + timedelta(hours=9, minutes=4))]
    for since, until in ranges:
        [total] = (await site(client, **{"from": since.isoformat(), "to": until.isoformat()}))["rows"]
        assert (total["visits"], total["visitors"]) == (2, 1)
        by_channel = await site(client, **{"from": since.isoformat(), "to": until.isoformat()}, group_by="channel")
        assert [(r["channel"], r["visitors"]) for r in by_channel["rows"]] == [("direct", 1), ("referral", 1)]


async def test_past_512_visitors_the_count_is_an_estimate_within_its_documented_error(client, runtime):
    rows = [
        dict(
            visitor=f"a:crowd-{n}",
            started_at=D0 + timedelta(minutes=n % 2880),  # two days, every minute
            ended_at=D0 + timedelta(minutes=n % 2880),
            seconds=0,
            pages=1,
            channel=("direct", "referral", "sms")[n % 3],
            source="s",
        )
        for n in range(4000)
    ]
    await store_and_count(runtime, rows)
    [total] = (await site(client, **{"from": D0.isoformat(), "to": (D1 + timedelta(hours=7, minutes=31)).isoformat()}))[
        "rows"
    ]
    truth = len({r["visitor"] for r in rows if r["started_at"] < D1 + timedelta(hours=7, minutes=31)})
    assert total["visits"] == truth  # one visit each: the visits stay exact
    assert abs(total["visitors"] - truth) <= 3 * RELATIVE_ERROR * truth, (total["visitors"], truth)


async def test_whole_hours_are_read_from_the_hourly_rollup_and_only_the_minutes_from_visits(client, runtime):
    rows = hand_built_visits()
    await store_and_count(runtime, rows)
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.delete(Visit.__table__))  # behind the rollups' back: they still count them
    hours = {"from": (D0 + timedelta(hours=5)).isoformat(), "to": (D0 + timedelta(hours=9)).isoformat()}
    [total] = (await site(client, **hours))["rows"]
    assert total["visits"] == counted_directly(rows, D0 + timedelta(hours=5), D0 + timedelta(hours=9), ())[0]["visits"]
    assert total["visits"] > 0
    minutes = {"from": (D0 + timedelta(hours=5, minutes=17)).isoformat(), "to": hours["to"]}
    [fewer] = (await site(client, **minutes))["rows"]
    # 05:17 to 06:00 is counted from the (now empty) visits, 06:00 to 09:00 from the hours
    assert fewer["visits"] == counted_directly(rows, D0 + timedelta(hours=6), D0 + timedelta(hours=9), ())[0]["visits"]
    assert fewer["visits"] < total["visits"]
