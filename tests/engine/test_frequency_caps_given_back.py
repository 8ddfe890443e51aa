"""Frequency-cap slots given back, on both databases, through the real Twilio SDK against
the fake Twilio: a marketing SMS that never went out (refused by the provider, an invalid or
unsubscribed number, or reported `failed` after acceptance) does not count against the
customer's cap, so the next one that day goes out; one delivered (or undelivered: the
carrier had it) still counts. The rule is in docs/frequency-caps.md."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from orchestrator.clock import SimulatedClock
from orchestrator.delivery.statuses import record_status
from orchestrator.engine.dispatch import dispatch_queued_messages
from orchestrator.startup import build_runtime
from orchestrator.storage.models import FrequencyCapSlot, Message
from orchestrator.vocabulary import MessageStatus
from tests.conftest import START, _reset, make_settings
from tests.engine.test_frequency_caps import LOS_ANGELES, at, caps_file, customer, queue, statuses
from tests.providers import fake_twilio

REACHABLE = "+14155550100"
INVALID, UNSUBSCRIBED = "+15005550001", "+15005550004"  # the fake's 21211 and 21610, as Twilio's own


@pytest.fixture(scope="module")
def twilio():
    with fake_twilio() as fake:
        yield fake


async def capped_runtime(database_url, twilio, tmp_path, caps: str):
    twilio.clear()
    await _reset(database_url)
    settings = make_settings(
        database_url,
        sms_provider="twilio",
        twilio_api_base_url=twilio.url,
        fake_twilio_auth_token=twilio.auth_token,
        public_base_url="http://127.0.0.1:9",
        frequency_caps_file=caps_file(tmp_path, caps),
    )
    return await build_runtime(settings, clock=SimulatedClock(START))


@pytest.fixture
async def once_a_day(database_url, twilio, tmp_path):
    runtime = await capped_runtime(database_url, twilio, tmp_path, "caps:\n  sms: {per_day: 1}\n")
    assert runtime.frequency.enabled
    yield runtime
    await runtime.aclose()


async def queue_to(runtime, customer_id: int, number: str) -> int:
    message_id = await queue(runtime, customer_id)
    async with runtime.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        message.to_address = number
    return message_id


async def slot_holders(runtime) -> list[int]:
    async with runtime.sessions() as session:
        return sorted((await session.exec(select(FrequencyCapSlot.message_id))).all())


async def report(runtime, message_id: int, status: str) -> None:
    """A provider status, as the status webhook records it."""
    async with runtime.sessions() as session, session.begin():
        message = await session.get(Message, message_id)
        await record_status(session, message, source="twilio", status=status, now=runtime.clock.now())


@pytest.mark.parametrize("refused_number", [INVALID, UNSUBSCRIBED], ids=["invalid-number", "unsubscribed"])
async def test_a_send_the_provider_refused_gives_its_slot_back(once_a_day, twilio, refused_number):
    runtime = once_a_day
    sam = await customer(runtime, "sam", LOS_ANGELES)
    refused = await queue_to(runtime, sam, refused_number)
    await dispatch_queued_messages(runtime)
    assert (await statuses(runtime))[refused][0] == MessageStatus.failed
    assert await slot_holders(runtime) == []

    await at(runtime, START + timedelta(hours=2))  # later the same local day
    second = await queue_to(runtime, sam, REACHABLE)
    await dispatch_queued_messages(runtime)
    assert (await statuses(runtime))[second][0] == MessageStatus.sent
    assert await slot_holders(runtime) == [second]
    assert [m["to"] for m in twilio.witnessed()] == [REACHABLE]  # the refused one never became a message


@pytest.mark.parametrize(
    ("reported", "given_back"),
    [("failed", True), ("delivered", False), ("undelivered", False)],
)
async def test_after_acceptance_only_a_failed_send_gives_its_slot_back(once_a_day, twilio, reported, given_back):
    runtime = once_a_day
    sam = await customer(runtime, "sam", LOS_ANGELES)
    first = await queue_to(runtime, sam, REACHABLE)
    await dispatch_queued_messages(runtime)
    await report(runtime, first, reported)
    assert (await statuses(runtime))[first][0] == reported

    await at(runtime, START + timedelta(hours=2))
    second = await queue_to(runtime, sam, REACHABLE)
    await dispatch_queued_messages(runtime)
    result = await statuses(runtime)
    if given_back:
        assert result[second][0] == MessageStatus.sent and await slot_holders(runtime) == [second]
    else:
        assert result[second] == (
            MessageStatus.skipped,
            f"frequency_cap: sms per_day 1 (reached; last slot taken by message {first})",
        )
        assert await slot_holders(runtime) == [first]


async def test_a_slot_given_back_between_held_ones_is_taken_again(database_url, twilio, tmp_path):
    """Three a week: the first of three held slots comes back; the next send takes that one,
    not a fourth."""
    runtime = await capped_runtime(database_url, twilio, tmp_path, "caps:\n  sms: {per_week: 3}\n")
    try:
        sam = await customer(runtime, "sam", LOS_ANGELES)
        sent = []
        for day in range(3):
            await at(runtime, START + timedelta(days=day))
            sent.append(await queue_to(runtime, sam, REACHABLE))
            await dispatch_queued_messages(runtime)
        await report(runtime, sent[0], "failed")
        await at(runtime, START + timedelta(days=3))
        fourth, fifth = await queue_to(runtime, sam, REACHABLE), await queue_to(runtime, sam, REACHABLE)
        await dispatch_queued_messages(runtime)
        result = await statuses(runtime)
        assert result[fourth][0] == MessageStatus.sent
        assert result[fifth][0] == MessageStatus.skipped and "per_week 3 (reached" in result[fifth][1]
        async with runtime.sessions() as session:
            slots = (await session.exec(select(FrequencyCapSlot.slot, FrequencyCapSlot.message_id))).all()
        assert sorted(slots) == [(0, fourth), (1, sent[1]), (2, sent[2])]
    finally:
        await runtime.aclose()
