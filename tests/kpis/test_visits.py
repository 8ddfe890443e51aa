"""Visits from page and screen calls: the session rules on their own, then the worker's fold
over real databases (gap boundaries, anonymous then identified, late views, idempotency)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.clock import utc
from orchestrator.kpis import site_fold
from orchestrator.kpis.rollup import read_watermark
from orchestrator.kpis.site_fold import FIRST_FOLD, SITE_CELLS, refresh_visits
from orchestrator.kpis.visits import View, credit_orders, sessionize
from orchestrator.storage.kpi_models import KpiRollupState, SiteDailyCell, SiteHourlyCell, Visit
from orchestrator.storage.models import Customer
from tests.conftest import refresh_kpis_as_the_worker_does

T = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
GAP = timedelta(minutes=30)


def view(at: datetime, url: str = "https://shop.example/") -> View:
    return View(at, {"url": url}, None)


# --- the rules, pure ---------------------------------------------------------------------


def test_views_29_59_apart_are_one_visit_and_30_00_apart_are_two():
    one = sessionize([view(T), view(T + timedelta(minutes=29, seconds=59))], GAP)
    two = sessionize([view(T), view(T + timedelta(minutes=30))], GAP)
    assert [len(v.views) for v in one] == [2] and [len(v.views) for v in two] == [1, 1]
    assert (one[0].started_at, one[0].ended_at) == (T, T + timedelta(seconds=1799))


def test_views_are_placed_by_when_they_happened_not_in_the_order_given():
    visits = sessionize([view(T + timedelta(minutes=40)), view(T), view(T + timedelta(minutes=20))], GAP)
    assert len(visits) == 1 and visits[0].started_at == T and visits[0].ended_at == T + timedelta(minutes=40)


def test_a_message_reference_mid_visit_starts_a_new_visit_but_a_reload_does_not():
    landing = "https://shop.example/?orc=1abcdefgh"
    visits = sessionize(
        [
            view(T),
            view(T + timedelta(minutes=1), landing),
            view(T + timedelta(minutes=2), landing),  # a reload of the landing page
            view(T + timedelta(minutes=3), "https://shop.example/boots"),
        ],
        GAP,
    )
    assert [len(v.views) for v in visits] == [1, 3] and visits[1].landing.url == landing


def test_views_at_one_instant_are_one_visit_landing_on_the_referenced_one():
    landing = "https://shop.example/?orc=1abcdefgh"
    visits = sessionize([view(T), view(T, landing), view(T, "https://shop.example/?orc=2abcdefgh")], GAP)
    assert len(visits) == 1 and visits[0].landing.url == landing and len(visits[0].views) == 3


def test_an_order_converts_the_latest_visit_started_before_it_within_the_window():
    visits = sessionize([view(T), view(T + timedelta(hours=2)), view(T + timedelta(hours=5))], GAP)
    window = timedelta(hours=1)
    credit_orders(
        visits, [T + timedelta(minutes=59), T + timedelta(hours=2, minutes=30), T - timedelta(hours=1)], window
    )
    assert [v.converted_at for v in visits] == [T + timedelta(minutes=59), T + timedelta(hours=2, minutes=30), None]
    late = sessionize([view(T)], GAP)
    credit_orders(late, [T + window + timedelta(seconds=1)], window)
    assert late[0].converted_at is None


def test_utm_comes_from_the_url_else_from_context_campaign():
    from_url = View(T, {"url": "https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=spring"}, None)
    assert from_url.utm() == {"source": "news", "medium": "email", "campaign": "spring", "content": None, "term": None}
    from_context = View(
        T,
        {},
        {"page": {"url": "https://shop.example/p", "path": "/p"}, "campaign": {"name": "spring", "source": "ads"}},
    )
    assert from_context.utm()["campaign"] == "spring" and from_context.utm()["source"] == "ads"
    assert (from_context.url, from_context.path) == ("https://shop.example/p", "/p")


# --- the fold over the database ------------------------------------------------------------


async def page(client, at: datetime, url: str = "https://shop.example/", *, user=None, anonymous=None, **properties):
    call = {"timestamp": at.isoformat(), "properties": {"url": url, **properties}, "name": "Page"}
    call |= {"userId": user} if user else {}
    call |= {"anonymousId": anonymous} if anonymous else {}
    response = await client.post("/v1/page", json=call)
    assert response.status_code == 200, response.text


async def stored_visits(runtime) -> list[Visit]:
    async with runtime.sessions() as session:
        return list((await session.exec(select(Visit).order_by(Visit.visitor, Visit.started_at))).all())


async def customer_id(runtime, user_id: str) -> int:
    async with runtime.sessions() as session:
        return (await session.exec(select(Customer.id).where(Customer.user_id == user_id))).one()


@pytest.fixture
def now(runtime) -> datetime:
    return runtime.clock.now()


async def test_the_fold_splits_at_the_gap_and_measures_each_visit(client, runtime, now):
    await page(client, now, "https://shop.example/?a=1", user="ann", referrer="https://www.google.com/search")
    await page(client, now + timedelta(minutes=29, seconds=59), "https://shop.example/boots", user="ann")
    await page(client, now + timedelta(minutes=59, seconds=59), "https://shop.example/cart", user="ann")
    await refresh_kpis_as_the_worker_does(client)
    first, second = await stored_visits(runtime)
    ann = await customer_id(runtime, "ann")
    assert (first.visitor, first.customer_id, first.pages, first.seconds) == (f"c:{ann}", ann, 2, 1799)
    assert (utc(first.started_at), utc(first.ended_at)) == (now, now + timedelta(seconds=1799))
    assert (first.landing_url, first.landing_path, first.referrer) == (
        "https://shop.example/?a=1",
        "/",
        "https://www.google.com/search",
    )
    assert (first.channel, first.source, first.journey_id) == ("referral", "www.google.com", "")
    assert (second.pages, second.seconds, second.landing_path) == (1, 0, "/cart")
    assert (second.channel, second.source) == ("direct", "direct")


async def test_anonymous_visits_become_the_customers_once_identified(client, runtime, now):
    await page(client, now, anonymous="anon-1")
    await page(client, now + timedelta(minutes=5), anonymous="anon-1")
    await refresh_kpis_as_the_worker_does(client)
    [anonymous] = await stored_visits(runtime)
    assert (anonymous.visitor, anonymous.customer_id, anonymous.pages) == ("a:anon-1", None, 2)

    response = await client.post("/v1/identify", json={"userId": "bob", "anonymousId": "anon-1", "traits": {}})
    assert response.status_code == 200
    await page(client, now + timedelta(minutes=10), "https://shop.example/account", user="bob")
    await refresh_kpis_as_the_worker_does(client)
    bob = await customer_id(runtime, "bob")
    [joined] = await stored_visits(runtime)  # one visit: the anonymous views and bob's, 10 minutes
    assert (joined.visitor, joined.customer_id, joined.pages, joined.seconds) == (f"c:{bob}", bob, 3, 600)


async def test_a_late_view_joins_two_visits_and_refolding_changes_nothing(client, runtime, now):
    await page(client, now, user="cleo")
    await page(client, now + timedelta(minutes=40), user="cleo")
    await refresh_kpis_as_the_worker_does(client)
    assert [v.pages for v in await stored_visits(runtime)] == [1, 1]
    await page(client, now + timedelta(minutes=20), user="cleo")  # arrives last, happened in between
    await refresh_kpis_as_the_worker_does(client)
    [joined] = await stored_visits(runtime)
    assert (joined.pages, joined.seconds, utc(joined.started_at)) == (3, 2400, now)
    before = [(v.visitor, v.started_at, v.pages, v.seconds) for v in await stored_visits(runtime)]
    await refresh_visits(runtime, rebuild=True)
    await refresh_visits(runtime)
    assert [(v.visitor, v.started_at, v.pages, v.seconds) for v in await stored_visits(runtime)] == before


async def test_erasing_a_customer_keeps_their_visits_counted_but_not_where_they_went(client, runtime, now):
    await page(client, now, "https://shop.example/?code=SECRET-ANN", user="ann", referrer="https://mail.example/ann")
    await page(client, now + timedelta(minutes=1), user="ann")
    await refresh_kpis_as_the_worker_does(client)
    assert (await client.post("/v1/customers/ann/erase")).status_code == 200
    [visit] = await stored_visits(runtime)
    assert (visit.pages, visit.seconds, visit.landing_url, visit.referrer, visit.landing_path) == (
        2,
        60,
        None,
        None,
        None,
    )


async def test_without_the_site_cells_state_the_rollups_are_counted_again_from_the_visits_alone(client, runtime, now):
    """As after a migration that reshapes the site rollups: the visits stay as folded."""
    await page(client, now, user="dan")
    await page(client, now + timedelta(days=1), user="dan")
    await refresh_kpis_as_the_worker_does(client)
    runtime.clock.advance(timedelta(minutes=10))
    await refresh_visits(runtime)  # past the late-commit margin: the next fold touches no visitor
    folded = [(v.id, v.started_at) for v in await stored_visits(runtime)]
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.delete(SiteDailyCell.__table__))
        await session.exec(sa.delete(SiteHourlyCell.__table__))
        await session.exec(sa.delete(KpiRollupState.__table__).where(KpiRollupState.name == SITE_CELLS))
    assert await refresh_visits(runtime) is None  # every day counted again
    assert [(v.id, v.started_at) for v in await stored_visits(runtime)] == folded  # not folded again
    async with runtime.sessions() as session:
        daily = (await session.exec(select(SiteDailyCell.day, SiteDailyCell.visits))).all()
        hours = (await session.exec(select(SiteHourlyCell.visits))).all()
    assert sorted(daily) == [(now.date(), 1), ((now + timedelta(days=1)).date(), 1)] and hours == [1, 1]
    assert await refresh_visits(runtime) == set()  # and the next fold, nothing new, counts no day


async def test_the_first_fold_commits_every_few_visitors_and_resumes_after_the_last_committed(
    client, runtime, now, monkeypatch
):
    """Page calls stored before any fold (as after the upgrade that brings visits); the fold
    dies while folding its second batch, as a worker killed midway would."""
    for name in ("ann", "bob", "cid", "dee", "eve"):
        await page(client, now, user=name)
    monkeypatch.setattr(site_fold, "VISITORS_PER_COMMIT", 2)
    real_fold, batches = site_fold._fold, []

    async def dies_on_the_second_batch(session, runtime_, starts, gap, window):
        batches.append(sorted(starts))
        if len(batches) == 2 and not resumed:
            raise RuntimeError("killed")
        return await real_fold(session, runtime_, starts, gap, window)

    resumed = False

    monkeypatch.setattr(site_fold, "_fold", dies_on_the_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        await refresh_visits(runtime)
    committed = {v.visitor: v.id for v in await stored_visits(runtime)}
    assert sorted(committed) == batches[0] and len(batches[0]) == 2  # the first batch stayed
    async with runtime.sessions() as session:
        progress = (await session.exec(select(KpiRollupState).where(KpiRollupState.name == FIRST_FOLD))).one()
        assert (progress.resume_after, await read_watermark(session, "site")) == (batches[0][-1], None)

    resumed, first, second = True, *batches
    runtime.clock.advance(timedelta(minutes=1))
    assert await refresh_visits(runtime) is None  # it ended, and the rollups were counted from every visit
    everyone = sorted(first + second + batches[3])
    # resumed after the first batch; then the usual fold of what arrived since the first fold began
    assert batches[2:] == [second, [everyone[-1]], everyone] and len(everyone) == 5
    assert len(await stored_visits(runtime)) == 5
    async with runtime.sessions() as session:
        assert await read_watermark(session, "site") == now + timedelta(minutes=1)  # the incremental fold's
        assert (await session.exec(select(KpiRollupState).where(KpiRollupState.name == FIRST_FOLD))).first() is None
        [(visits,)] = (await session.exec(sa.select(sa.func.sum(SiteDailyCell.visits)))).all()
    assert visits == 5
