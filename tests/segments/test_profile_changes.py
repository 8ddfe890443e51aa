"""Membership follows changes that come without an event: a customer import and an erasure
mark the customers they touch, and the next segment round (not the hourly sweep)
re-evaluates just them, in bounded batches; an identify moves them as any event does."""

from __future__ import annotations

import io

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock
from orchestrator.customers.imports import ImportSource, import_customers
from orchestrator.segments import refresh
from orchestrator.segments.refresh import refresh_segments
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer, Enrollment, Event
from orchestrator.storage.segment_models import CustomerProfileChange, SegmentMember, SegmentMembershipChange
from tests.conftest import START, _reset, make_settings

VIP = "id: vip\nwhere:\n  trait: {name: plan, equals: vip}\n"
VIP_THANKS = """\
id: vip-thanks
trigger:
  segment_entered: vip
exit_on:
  - segment_left: vip
steps:
  - wait: 120d
  - send: {channel: email, template: welcome-email}
"""


@pytest.fixture
async def store(database_url, tmp_path):
    """A runtime with one segment (plan is vip) and a journey entered and left with it."""
    for folder, name, text in (("segments", "vip.yaml", VIP), ("journeys", "vip-thanks.yaml", VIP_THANKS)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text(text)
    await _reset(database_url)
    settings = make_settings(database_url, segments_dir=tmp_path / "segments", journeys_dir=tmp_path / "journeys")
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    first = {r.segment_id: r for r in await refresh_segments(runtime)}
    assert first["vip"].swept  # the first fill; every later round here re-evaluates changes only
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client, runtime
    await runtime.aclose()


async def import_csv(runtime, text: str, batch_lines: int = 1000) -> None:
    source = ImportSource(file="people.csv", imported_at=runtime.clock.now())
    report = await import_customers(runtime.sessions, io.BytesIO(text.encode()), "csv", source, batch_lines=batch_lines)
    assert report.reject_count == 0, report.rejects


async def vip_members(runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.exec(
            sa.select(Customer.user_id)
            .join(SegmentMember, SegmentMember.customer_id == Customer.id)
            .where(SegmentMember.segment_id == "vip")
            .order_by(Customer.user_id)
        )
        return list(rows.scalars())


async def enrollments(runtime) -> dict[int, tuple[str, str | None]]:
    async with runtime.sessions() as session:
        return {e.customer_id: (e.status, e.exit_reason) for e in (await session.exec(select(Enrollment))).all()}


async def customer_id(runtime, user_id: str) -> int:
    async with runtime.sessions() as session:
        return (await session.exec(select(Customer.id).where(Customer.user_id == user_id))).one()


async def profile_changes(runtime) -> int:
    async with runtime.sessions() as session:
        return (await session.exec(sa.select(sa.func.count()).select_from(CustomerProfileChange))).scalar_one()


async def changes_round(runtime):
    [done] = [r for r in await refresh_segments(runtime) if r.segment_id == "vip"]
    assert not done.swept  # the change reached membership without waiting for a sweep
    return done


async def test_customers_enter_on_import_and_move_when_an_import_changes_them(store):
    client, runtime = store
    assert await vip_members(runtime) == []
    await import_csv(runtime, "userId,plan\nann,vip\nbob,gold\n")
    done = await changes_round(runtime)
    assert (done.entered, done.left) == (1, 0)
    assert await vip_members(runtime) == ["ann"]
    ann, bob = await customer_id(runtime, "ann"), await customer_id(runtime, "bob")
    assert await enrollments(runtime) == {ann: ("active", None)}  # entering started the journey

    await import_csv(runtime, "userId,plan\nann,gold\nbob,vip\n")
    done = await changes_round(runtime)
    assert (done.entered, done.left) == (1, 1)
    assert await vip_members(runtime) == ["bob"]
    assert await enrollments(runtime) == {ann: ("exited", "exit_on: Segment Left: vip"), bob: ("active", None)}

    marked = await profile_changes(runtime)
    await import_csv(runtime, "userId,plan\nann,gold\nbob,vip\n")  # the same file again changes nothing
    assert await profile_changes(runtime) == marked


async def test_an_identify_that_changes_traits_moves_membership_at_the_next_round(store):
    client, runtime = store
    await client.post("/v1/identify", json={"userId": "cho", "traits": {"plan": "vip"}})
    assert (await changes_round(runtime)).entered == 1
    await client.post("/v1/identify", json={"userId": "cho", "traits": {"plan": "basic"}})
    assert (await changes_round(runtime)).left == 1
    assert await vip_members(runtime) == []


async def test_an_erased_customer_leaves_every_segment_and_their_journeys(store):
    client, runtime = store
    await import_csv(runtime, "userId,plan\nann,vip\nbob,vip\n")
    await changes_round(runtime)
    assert await vip_members(runtime) == ["ann", "bob"]
    bob = await customer_id(runtime, "bob")

    assert (await client.post("/v1/customers/bob/erase")).status_code == 200
    done = await changes_round(runtime)
    assert (done.entered, done.left) == (0, 1)
    assert await vip_members(runtime) == ["ann"]
    assert (await enrollments(runtime))[bob] == ("exited", "customer erased")
    async with runtime.sessions() as session:
        log = (
            await session.exec(select(SegmentMembershipChange.change).where(SegmentMembershipChange.customer_id == bob))
        ).all()
        written_about_bob = (await session.exec(select(Event.name).where(Event.customer_id == bob))).all()
    assert list(log) == ["entered", "left"]
    assert "Segment Left: vip" not in written_about_bob  # nothing new is written about an erased person


async def test_a_large_import_is_re_evaluated_in_bounded_rounds(store, monkeypatch):
    client, runtime = store
    monkeypatch.setattr(refresh, "ROUND_ROWS", 2)
    transactions = []
    evaluate = refresh.refresh_segment

    async def counted(session, runtime, segment, sweep=False):
        done = await evaluate(session, runtime, segment, sweep)
        transactions.append(done)
        return done

    monkeypatch.setattr(refresh, "refresh_segment", counted)
    await import_csv(runtime, "userId,plan\n" + "".join(f"u{n},vip\n" for n in range(5)), batch_lines=2)
    done = await changes_round(runtime)
    assert (done.entered, done.left, done.behind) == (5, 0, False)  # one call caught up with every mark
    assert [(t.entered, t.behind) for t in transactions] == [(2, True), (2, True), (1, False)]
    assert await vip_members(runtime) == [f"u{n}" for n in range(5)]
    assert await profile_changes(runtime) == 1  # read by every segment: forgotten, but for the last

    await import_csv(runtime, "userId,plan\nu5,vip\n")  # numbered past the one kept, on SQLite too
    assert (await changes_round(runtime)).entered == 1


async def test_a_segment_behind_after_its_rounds_in_a_row_continues_at_the_next_job(store, monkeypatch):
    client, runtime = store
    monkeypatch.setattr(refresh, "ROUND_ROWS", 2)
    monkeypatch.setattr(refresh, "ROUNDS_IN_A_ROW", 2)
    await import_csv(runtime, "userId,plan\n" + "".join(f"u{n},vip\n" for n in range(5)))
    first = await changes_round(runtime)
    assert (first.entered, first.behind) == (4, True)
    assert await vip_members(runtime) == [f"u{n}" for n in range(4)]
    second = await changes_round(runtime)
    assert (second.entered, second.behind) == (1, False)
    assert await vip_members(runtime) == [f"u{n}" for n in range(5)]
