"""One customer's bad data or one bad template fails one message, never the worker's round.

Issue 14, item 1: a template formatting `event.cart_value` as a number and one event whose
`cart_value` was the string "80.00" made every round raise, forever, so hundreds of
unrelated enrollments stopped advancing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from orchestrator.engine.loop import WorkerLoop
from orchestrator.engine.worker import advance_due_enrollments
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.loader import parse_journey
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.templating.store import TemplateStore

CART_TOTAL_JOURNEY = """\
id: cart-total
trigger: {event: Checkout Started}
steps:
  - id: remind
    send: {channel: sms, template: cart-total-sms}
  - id: thank
    send: {channel: sms, template: nps-question, transactional: true}
"""

# One expression per error the issue names; `bad` raises it, `good` renders.
POISONS = {
    "TypeError": ("{{ '%.2f'|format(event.cart_value) }}", {"cart_value": "80.00"}, {"cart_value": 80}),
    "ZeroDivisionError": ("{{ event.total / event.count }}", {"total": 10, "count": 0}, {"total": 10, "count": 2}),
    "OverflowError": ("{{ 10.0 ** event.exponent }}", {"exponent": 400}, {"exponent": 2}),
    "IndexError": ("{{ event.sizes.pop(3) }}", {"sizes": []}, {"sizes": [36, 38, 40, 42]}),
    # str.center refuses to allocate 2**61 characters at once: a real MemoryError, no memory used.
    "MemoryError": ("{{ 'x'.center(event.width) }}", {"width": 2**61}, {"width": 3}),
    "RecursionError": (
        "{% macro countdown(n) %}{% if n > 0 %}{{ n }} {{ countdown(n - event.step) }}{% endif %}"
        "{% endmacro %}{{ countdown(3) }}",
        {"step": 0},
        {"step": 1},
    ),
}


def add_template(runtime, tmp_path, name: str, text: str) -> None:
    folder = tmp_path / "templates" / name
    folder.mkdir(parents=True)
    (folder / "en.txt").write_text(text)
    loaded = TemplateStore.load(tmp_path / "templates")
    assert not loaded.problems, loaded.problems
    runtime.templates.templates.update(loaded.templates)


async def send_events(runtime, *calls) -> None:
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, list(calls))


def customer(user_id: str, n: int) -> IdentifyCall:
    return IdentifyCall(
        userId=user_id, traits={"phone": f"+1415555{n:04d}", "sms_opt_in": True, "email": f"{user_id}@example.com"}
    )


async def messages_by_user(runtime) -> dict[tuple[str, str], Message]:
    async with runtime.sessions() as session:
        rows = (
            await session.exec(
                select(Message, Customer.user_id).join(Customer, col(Customer.id) == col(Message.customer_id))
            )
        ).all()
    return {(user_id, message.step_id): message for message, user_id in rows}


async def enrollments_by_user(runtime) -> dict[tuple[str, str], Enrollment]:
    async with runtime.sessions() as session:
        rows = (
            await session.exec(
                select(Enrollment, Customer.user_id).join(Customer, col(Customer.id) == col(Enrollment.customer_id))
            )
        ).all()
    return {(user_id, e.journey_id): e for e, user_id in rows}


@pytest.mark.parametrize("error", list(POISONS))
async def test_a_poison_event_fails_its_message_and_the_round_goes_on(runtime, tmp_path, error):
    expression, bad, good = POISONS[error]
    add_template(runtime, tmp_path, "cart-total-sms", f"Your cart: {expression}")
    runtime.catalog.add_current(parse_journey(CART_TOTAL_JOURNEY, tmp_path / "cart-total.yaml"))
    # Others in the same round: before and after the poison, on this journey and on another.
    await send_events(
        runtime,
        customer("ann", 1),
        TrackCall(userId="ann", event="Checkout Started", properties=good),
        customer("pat", 2),
        TrackCall(userId="pat", event="Checkout Started", properties=bad),
        customer("zoe", 3),
        TrackCall(userId="zoe", event="Checkout Started", properties=good),
        customer("sue", 4),
        TrackCall(userId="sue", event="Signed Up"),
    )

    advanced, _ = await advance_due_enrollments(runtime)

    assert advanced == 4
    messages = await messages_by_user(runtime)
    poisoned = messages["pat", "remind"]
    assert poisoned.status == "failed"
    assert poisoned.status_reason.startswith(f"template cart-total-sms (step remind): {error}"), poisoned.status_reason
    assert poisoned.body is None
    # The poisoned customer's next step still renders, and every other customer is untouched.
    assert messages["pat", "thank"].status == "queued"
    for user_id in ("ann", "zoe"):
        assert messages[user_id, "remind"].status == "queued"
        assert messages[user_id, "remind"].body.startswith("Your cart: ")
    assert messages["sue", "welcome-email"].status == "queued"
    assert {e.status for e in (await enrollments_by_user(runtime)).values()} == {"completed"}


async def test_the_original_poison_leaves_later_rounds_moving(runtime, tmp_path):
    """As reported: the same bad event, then more customers on another journey, round after round."""
    add_template(runtime, tmp_path, "cart-total-sms", "Your cart: {{ '%.2f'|format(event.cart_value) }}")
    runtime.catalog.add_current(parse_journey(CART_TOTAL_JOURNEY, tmp_path / "cart-total.yaml"))
    await send_events(
        runtime,
        customer("pat", 1),
        TrackCall(userId="pat", event="Checkout Started", properties={"cart_value": "80.00"}),
    )
    await WorkerLoop(runtime).drain()
    await send_events(runtime, customer("sam", 2), TrackCall(userId="sam", event="Cart Abandoned"))
    runtime.clock.advance(timedelta(hours=1))
    await WorkerLoop(runtime).drain()
    runtime.clock.advance(timedelta(hours=1))
    await WorkerLoop(runtime).drain()

    messages = await messages_by_user(runtime)
    assert messages["pat", "remind"].status_reason == (
        "template cart-total-sms (step remind): TypeError: must be real number, not str"
    )
    assert messages["sam", "discount-sms"].status == "sent"


async def test_a_condition_that_cannot_be_evaluated_fails_only_its_enrollment(runtime, tmp_path):
    journey = (
        "id: big-spender\ntrigger: {event: Checkout Started}\nsteps:\n"
        '  - id: per-item\n    if: "event.total / event.count > 10"\n    then:\n'
        "      - send: {channel: sms, template: nps-question, transactional: true}\n"
    )
    runtime.catalog.add_current(parse_journey(journey, tmp_path / "big-spender.yaml"))
    await send_events(
        runtime,
        customer("pat", 1),
        TrackCall(userId="pat", event="Checkout Started", properties={"total": 10, "count": 0}),
        customer("ann", 2),
        TrackCall(userId="ann", event="Checkout Started", properties={"total": 100, "count": 2}),
    )

    assert (await advance_due_enrollments(runtime))[0] == 2

    enrollments = await enrollments_by_user(runtime)
    assert enrollments["pat", "big-spender"].status == "failed"
    assert "ZeroDivisionError" in enrollments["pat", "big-spender"].exit_reason
    assert enrollments["ann", "big-spender"].status == "completed"
    [(user_id, _)] = (await messages_by_user(runtime)).keys()
    assert user_id == "ann"


async def test_values_a_database_refuses_do_not_abort_the_rounds_bulk_insert(runtime, tmp_path):
    """The worker writes a round's messages in one INSERT: SQLite's JSON encoder refused a
    date (a YAML date among the step's vars) and aborted the round, failed message and all."""
    add_template(runtime, tmp_path, "launch-sms", "Launch on {{ launch }}: {{ event[event.size] }}")
    journey = (
        "id: launch\ntrigger: {event: Checkout Started}\nsteps:\n"
        "  - id: announce\n    send:\n      channel: sms\n      template: launch-sms\n"
        "      vars: {launch: 2026-05-01}\n"
    )
    runtime.catalog.add_current(parse_journey(journey, tmp_path / "launch.yaml"))
    await send_events(
        runtime,
        customer("pat", 1),
        TrackCall(userId="pat", event="Checkout Started", properties={"size": "XL"}),
        customer("ann", 2),
        TrackCall(userId="ann", event="Checkout Started", properties={"size": "size"}),
    )

    assert (await advance_due_enrollments(runtime))[0] == 2

    messages = await messages_by_user(runtime)
    assert messages["pat", "announce"].status == "failed"
    assert "XL" in messages["pat", "announce"].status_reason
    assert (messages["ann", "announce"].status, messages["ann", "announce"].body) == (
        "queued",
        "Launch on 2026-05-01: size",
    )
    assert messages["ann", "announce"].template_metadata["variables"] == {"launch": "2026-05-01"}
