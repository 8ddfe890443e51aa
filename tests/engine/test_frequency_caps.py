"""Frequency caps at dispatch, on both databases: local days and weeks (Tokyo against Los
Angeles), transactional sends exempt, priority over arrival order, the skip reason and its
KPI count, and on PostgreSQL two dispatchers racing for the last slot.

Messages are written straight into `messages`, as journeys and broadcasts both leave them
(the caps key on the row, not on where it came from), then dispatched by the real
dispatcher through the local adapters.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from orchestrator.clock import SimulatedClock
from orchestrator.engine.dispatch import dispatch_queued_messages
from orchestrator.engine.frequency_caps import enforce_caps
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.policies.frequency import load_frequency_policy
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer, FrequencyCapSlot, Message
from orchestrator.vocabulary import MessageStatus
from tests.conftest import START, _reset, make_settings, refresh_kpis_as_the_worker_does

TOKYO, LOS_ANGELES = "Asia/Tokyo", "America/Los_Angeles"
_keys = count()


def caps_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "frequency.yaml"
    path.write_text(text)
    return path


@pytest.fixture
async def capped(runtime, tmp_path):
    """The shared runtime with caps: SMS once a day, e-mail twice a week."""
    runtime.frequency = load_frequency_policy(
        caps_file(tmp_path, "caps:\n  sms: {per_day: 1}\n  email: {per_week: 2}\n")
    )
    return runtime


async def customer(runtime, user_id: str, zone: str | None) -> int:
    async with runtime.sessions() as session, session.begin():
        row = Customer(
            user_id=user_id,
            phone="+14155550100",
            email=f"{user_id}@example.com",
            timezone=zone,
            created_at=runtime.clock.now(),
            updated_at=runtime.clock.now(),
        )
        session.add(row)
        await session.flush()
        return row.id


async def queue(
    runtime,
    customer_id: int,
    channel: str = "sms",
    *,
    priority: int = 0,
    marketing: bool = True,
    due: datetime | None = None,
    journey: str | None = "promo",
) -> int:
    """A queued message as a journey step (or, with `journey=None`, a broadcast) leaves it."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        row = Message(
            send_key=f"test:{next(_keys)}",
            customer_id=customer_id,
            journey_id=journey,
            step_id="send" if journey else None,
            channel=channel,
            to_address="+14155550100" if channel == "sms" else "someone@example.com",
            subject="Hello" if channel == "email" else None,
            body="Hello",
            marketing=marketing,
            priority=priority,
            status=MessageStatus.queued,
            next_attempt_at=due or now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        return row.id


async def statuses(runtime) -> dict[int, tuple[str, str | None]]:
    async with runtime.sessions() as session:
        rows = (await session.exec(select(Message).order_by(Message.id))).all()
        return {m.id: (m.status, m.status_reason) for m in rows}


async def at(runtime, moment: datetime) -> None:
    runtime.clock.set(moment)


def sent(status: tuple[str, str | None]) -> bool:
    return status[0] == MessageStatus.sent


async def test_a_day_is_counted_in_the_customers_own_zone(capped):
    runtime = capped
    la, tokyo = await customer(runtime, "la", LOS_ANGELES), await customer(runtime, "tokyo", TOKYO)
    first = [await queue(runtime, la), await queue(runtime, tokyo)]  # Monday 09:00 in LA, Tuesday 02:00 in Tokyo
    await dispatch_queued_messages(runtime)
    await at(runtime, datetime(2026, 3, 3, 8, 0, tzinfo=timezone.utc))  # LA: Tuesday 00:00; Tokyo: still Tuesday
    second_la, second_tokyo = await queue(runtime, la), await queue(runtime, tokyo)
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert all(sent(result[m]) for m in first)
    assert sent(result[second_la])
    assert result[second_tokyo] == (
        MessageStatus.skipped,
        f"frequency_cap: sms per_day 1 (reached; last slot taken by message {first[1]})",
    )
    await at(runtime, datetime(2026, 3, 3, 15, 0, tzinfo=timezone.utc))  # Tokyo: Wednesday 00:00; LA: Tuesday 07:00
    third_la, third_tokyo = await queue(runtime, la), await queue(runtime, tokyo)
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert sent(result[third_tokyo]) and result[third_la][0] == MessageStatus.skipped


async def test_a_week_runs_monday_to_sunday_in_the_customers_zone(capped):
    runtime = capped
    la, tokyo = await customer(runtime, "la", LOS_ANGELES), await customer(runtime, "tokyo", TOKYO)
    for day in (0, 1):  # Monday and Tuesday (LA): two e-mails each, the week's whole allowance
        await at(runtime, START + timedelta(days=day))
        await queue(runtime, la, "email"), await queue(runtime, tokyo, "email")
        await dispatch_queued_messages(runtime)
    await at(runtime, START + timedelta(days=2))
    over_la, over_tokyo = await queue(runtime, la, "email"), await queue(runtime, tokyo, "email")
    await dispatch_queued_messages(runtime)
    # Sunday 16:00 UTC: 09:00 Sunday in LA, same week; 01:00 Monday in Tokyo, a new week.
    await at(runtime, datetime(2026, 3, 8, 16, 0, tzinfo=timezone.utc))
    sunday_la, monday_tokyo = await queue(runtime, la, "email"), await queue(runtime, tokyo, "email")
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert [result[m][0] for m in (over_la, over_tokyo, sunday_la)] == [MessageStatus.skipped] * 3
    assert result[over_la][1].startswith("frequency_cap: email per_week 2 (reached")
    assert sent(result[monday_tokyo])
    assert sum(sent(s) for s in result.values()) == 5


async def test_transactional_sends_are_neither_capped_nor_counted(capped):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    receipts = [await queue(runtime, sam, marketing=False) for _ in range(3)]
    await dispatch_queued_messages(runtime)
    promo = await queue(runtime, sam)
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert all(sent(result[m]) for m in [*receipts, promo])
    async with runtime.sessions() as session:
        slots = (await session.exec(select(FrequencyCapSlot.message_id))).all()
    assert slots == [promo]


async def test_an_uncapped_channel_is_not_capped(capped):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    whatsapp = [await queue(runtime, sam, "whatsapp") for _ in range(3)]
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert all(sent(result[m]) for m in whatsapp)


@pytest.mark.parametrize("high_first", [True, False], ids=["high-priority-arrived-first", "low-priority-arrived-first"])
async def test_a_higher_priority_send_due_later_today_wins_over_one_due_now(capped, high_first: bool):
    """The outcome is the same whichever arrived (and got a lower id) first."""
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)  # 09:00 Monday in LA
    evening = START + timedelta(hours=9)  # 18:00, still Monday
    if high_first:
        high = await queue(runtime, sam, priority=5, due=evening, journey=None)  # a broadcast
        low = await queue(runtime, sam, priority=0)
    else:
        low = await queue(runtime, sam, priority=0)
        high = await queue(runtime, sam, priority=5, due=evening, journey=None)
    await dispatch_queued_messages(runtime)
    await at(runtime, evening)
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert sent(result[high])
    assert result[low] == (
        MessageStatus.skipped,
        f"frequency_cap: sms per_day 1 (yields to message {high}, priority 5)",
    )


async def test_a_higher_priority_send_takes_the_slot_when_only_lower_ones_wait(capped):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    low = await queue(runtime, sam, priority=0, due=START + timedelta(hours=3))
    high = await queue(runtime, sam, priority=5)
    await dispatch_queued_messages(runtime)
    await at(runtime, START + timedelta(hours=3))
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert sent(result[high])
    assert result[low] == (
        MessageStatus.skipped,
        f"frequency_cap: sms per_day 1 (reached; last slot taken by message {high})",
    )


async def test_a_pending_send_due_tomorrow_does_not_hold_todays_slot(capped):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    tomorrow = await queue(runtime, sam, priority=9, due=START + timedelta(days=1))
    today = await queue(runtime, sam, priority=0)
    await dispatch_queued_messages(runtime)
    await at(runtime, START + timedelta(days=1))
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    assert sent(result[today]) and sent(result[tomorrow])


async def test_a_retried_send_keeps_its_slot(capped):
    """A message re-queued after a transient failure was counted once and is not capped by itself."""
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    promo = await queue(runtime, sam)
    async with runtime.sessions() as session, session.begin():
        [claimed] = (
            await session.exec(select(Message).where(Message.id == promo))
        ).all()  # as the dispatcher does: sending, then its slot
        claimed.status = MessageStatus.sending
        await enforce_caps(session, runtime.frequency, [claimed], runtime.clock.now())
        claimed.status = MessageStatus.queued  # the provider was down: queued for a retry
    await at(runtime, START + timedelta(minutes=5))
    await dispatch_queued_messages(runtime)
    assert sent((await statuses(runtime))[promo])


async def test_slots_of_long_past_periods_are_purged(capped):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    old = await queue(runtime, sam)
    await dispatch_queued_messages(runtime)
    await at(runtime, START + timedelta(days=10))
    recent = await queue(runtime, sam)
    await dispatch_queued_messages(runtime)
    await at(runtime, START + timedelta(days=16))
    await WorkerLoop(runtime).purge_cap_slots()
    async with runtime.sessions() as session:
        kept = (await session.exec(select(FrequencyCapSlot.message_id))).all()
    assert kept == [recent] and old != recent


async def journeys_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "journeys"
    folder.mkdir()
    for name, priority in (("everyday-promo", 0), ("vip-offer", 10)):
        (folder / f"{name}.yaml").write_text(
            f"id: {name}\npriority: {priority}\nquiet_hours: off\ntrigger:\n  event: Sale Started\n"
            "steps:\n  - id: text\n    send:\n      channel: sms\n      template: abandoned-cart-sms\n"
            "      vars: {discount_percent: 10, discount_code: SALE}\n"
        )
    return folder


async def test_journey_priority_decides_between_two_journeys_sending_at_once(database_url, tmp_path):
    """Two journeys text the same customer in the same worker round: the one declaring the
    higher `priority:` gets the day's SMS, whatever order the worker met them in."""
    await _reset(database_url)
    settings = make_settings(
        database_url,
        journeys_dir=await journeys_dir(tmp_path),
        frequency_caps_file=caps_file(tmp_path, "caps:\n  sms: {per_day: 1}\n"),
    )
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    try:
        async with runtime.sessions() as session, session.begin():
            await ingest(
                session,
                runtime,
                [
                    IdentifyCall(userId="sam", traits={"phone": "+14155550100", "sms_opt_in": True}),
                    TrackCall(userId="sam", event="Sale Started"),
                ],
            )
        await WorkerLoop(runtime).drain()
        async with runtime.sessions() as session:
            rows = (await session.exec(select(Message).order_by(Message.journey_id))).all()
        assert [(m.journey_id, m.priority, m.status) for m in rows] == [
            ("everyday-promo", 0, MessageStatus.skipped),
            ("vip-offer", 10, MessageStatus.sent),
        ]
        winner = rows[1].id
        assert rows[0].status_reason == f"frequency_cap: sms per_day 1 (reached; last slot taken by message {winner})"
    finally:
        await runtime.aclose()


async def test_a_capped_send_is_listed_on_the_timeline_and_counted_in_kpis(capped, client):
    runtime = capped
    sam = await customer(runtime, "sam", LOS_ANGELES)
    ann = await customer(runtime, "ann", LOS_ANGELES)
    winners = [await queue(runtime, sam), await queue(runtime, ann)]
    losers = [await queue(runtime, sam), await queue(runtime, ann)]
    await dispatch_queued_messages(runtime)

    listed = (await client.get("/v1/messages", params={"status": "skipped"})).json()["items"]
    assert sorted(m["id"] for m in listed) == losers
    assert listed[0]["status_reason"].startswith("frequency_cap: sms per_day 1 (reached; last slot taken by message ")

    timeline = (await client.get("/v1/customers/sam/timeline")).json()["items"]
    [skip] = [item for item in timeline if item["kind"] == "message_skipped"]
    assert f"message {winners[0]}" in skip["summary"] and "frequency_cap: sms per_day 1" in skip["summary"]

    await refresh_kpis_as_the_worker_does(client)
    [row] = (await client.get("/v1/kpis", params={"group_by": ["journey", "channel"]})).json()["rows"]
    assert (row["journey"], row["channel"], row["sent"], row["skipped"], row["capped"]) == ("promo", "sms", 2, 2, 2)
    assert row["skipped_by_reason"] == {"frequency_cap: sms per_day 1": 2}  # one bucket, whoever won


# --- two dispatchers on one PostgreSQL -------------------------------------------------------


@pytest.fixture
async def two_dispatchers(postgres_database, tmp_path):
    """Two runtimes (two connection pools, as two worker processes have) on one PostgreSQL."""
    await _reset(postgres_database)
    settings = make_settings(postgres_database, frequency_caps_file=caps_file(tmp_path, "caps:\n  sms: {per_day: 1}\n"))
    first = await build_runtime(settings, clock=SimulatedClock(START))
    second = await build_runtime(settings, clock=SimulatedClock(START))
    yield first, second
    await first.aclose()
    await second.aclose()


async def sending_in_open_transaction(session, runtime, customer_id: int, priority: int) -> int:
    """Worker A's side: a send written already claimed (as a worker writes the messages of the
    enrollments it advances), its cap slots taken, the transaction still open."""
    row = Message(
        send_key="a:1",
        customer_id=customer_id,
        journey_id="promo",
        channel="sms",
        to_address="+14155550100",
        body="Hi",
        priority=priority,
        status=MessageStatus.sending,
        next_attempt_at=START,
        created_at=START,
        updated_at=START,
    )
    session.add(row)
    await session.flush()
    assert await enforce_caps(session, runtime.frequency, [row], START) == set()
    return row.id


async def test_two_dispatchers_cannot_both_take_the_last_slot(two_dispatchers):
    """Worker A has taken the day's slot for a send it has not committed yet (invisible to B);
    B dispatches another send for the same customer, sees no rival, and tries the same slot.
    The database makes B wait for A, then refuses the slot: B decides again on what A
    committed and skips its send."""
    a, b = two_dispatchers
    sam = await customer(a, "sam", LOS_ANGELES)
    queued = await queue(a, sam)
    async with a.sessions() as session, session.begin():
        a_message = await sending_in_open_transaction(session, a, sam, priority=5)  # outranks `queued`, which A sees
        racing = asyncio.create_task(dispatch_queued_messages(b))
        await _until_waiting_on_a_lock(a)
    await racing
    result = await statuses(a)
    assert result[queued] == (
        MessageStatus.skipped,
        f"frequency_cap: sms per_day 1 (reached; last slot taken by message {a_message})",
    )
    async with a.sessions() as session:
        assert (await session.exec(select(FrequencyCapSlot.message_id))).all() == [a_message]


async def test_a_lost_race_does_not_hand_the_slot_to_the_lower_priority_send(two_dispatchers, tmp_path):
    """Two slots a day. A holds one, uncommitted. B claims two sends of the same customer and
    tries both slots: it gets the second and loses the first to A. The remaining slot goes
    to B's higher-priority send, not to the one whose insert happened to succeed."""
    a, b = two_dispatchers
    for runtime in (a, b):
        runtime.frequency = load_frequency_policy(caps_file(tmp_path, "caps:\n  sms: {per_day: 2}\n"))
    sam = await customer(a, "sam", LOS_ANGELES)
    high, low = await queue(a, sam, priority=5), await queue(a, sam, priority=1)
    async with a.sessions() as session, session.begin():
        a_message = await sending_in_open_transaction(session, a, sam, priority=9)
        racing = asyncio.create_task(dispatch_queued_messages(b))
        await _until_waiting_on_a_lock(a)
    await racing
    result = await statuses(a)
    assert sent(result[high])
    assert result[low] == (
        MessageStatus.skipped,
        f"frequency_cap: sms per_day 2 (reached; last slot taken by message {high})",
    )
    async with a.sessions() as session:
        holders = (await session.exec(select(FrequencyCapSlot.message_id).order_by(FrequencyCapSlot.slot))).all()
    assert holders == [a_message, high]


async def _until_waiting_on_a_lock(runtime) -> None:
    """Until another session of this database waits for a lock (B's slot insert waiting for A)."""
    for _ in range(2000):
        async with runtime.engine.connect() as connection:
            waiting = await connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second dispatcher never waited for the first one's slot")


async def test_racing_dispatchers_send_each_customer_its_highest_priority_message(two_dispatchers):
    """Many customers, three sends each at random priorities, two dispatchers claiming a few at
    a time in parallel: each customer gets exactly one SMS, always the highest-priority one."""
    a, b = two_dispatchers
    expected = {}
    for n in range(40):
        who = await customer(a, f"c{n}", (TOKYO, LOS_ANGELES)[n % 2])
        ids = {await queue(a, who, priority=(n * 7 + k * 3) % 5 + k): k for k in range(3)}
        async with a.sessions() as session:
            rows = (await session.exec(select(Message).where(Message.customer_id == who))).all()
        expected[who] = max(rows, key=lambda m: (m.priority, -m.id)).id
        assert len(ids) == 3

    async def dispatch_all(runtime) -> None:
        while await dispatch_queued_messages(runtime, limit=7):
            pass

    await asyncio.gather(dispatch_all(a), dispatch_all(b))
    async with a.sessions() as session:
        rows = (await session.exec(select(Message))).all()
    sent_to = {}
    for m in rows:
        if m.status == MessageStatus.sent:
            assert m.customer_id not in sent_to, f"customer {m.customer_id} got two SMS"
            sent_to[m.customer_id] = m.id
        else:
            assert m.status == MessageStatus.skipped and m.status_reason.startswith("frequency_cap: sms per_day 1")
    assert sent_to == expected
