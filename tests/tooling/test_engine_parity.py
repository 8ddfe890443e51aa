"""The simulator and the real engine agree: every shipped scenario, run both ways.

The simulator mirrors `engine.enrollments.react_to_event` and `engine.worker` in memory; this
test replays the same customer and events through the real API-side ingestion and worker
on SQLite (clock stepped to every moment something happens; the worker's enrollment step,
not the provider dispatch, which the simulator does not model) and compares the messages
and enrollments the two produce. Replies go in as track events named `reply`, which wake a
`wait_for` exactly as the inbound webhook's do. If the engine's rules change, this is where the simulator is
told. Both prepare messages with the runtime's settings, so links of marketing SMS and
WhatsApp are shortened alike and the bodies are compared as sent, byte for byte: a short
link names its enrollment, so each scenario gets a database of its own and the engine's
enrollment ids count from 1, as the simulator's do.
"""

from __future__ import annotations

import shutil

import pytest
from sqlmodel import col, select

from orchestrator.clock import SimulatedClock, utc
from orchestrator.engine.worker import run_due_enrollments
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.inputs import DEFAULT_START, parse_customer, parse_events, read_document
from orchestrator.tooling.simulate import simulate
from orchestrator.tooling.sources import find_journey
from tests.conftest import make_settings
from tests.tooling.conftest import JOURNEYS, TEMPLATES

pytestmark = pytest.mark.integration  # the engine half runs on a real SQLite file


def _message_view(channel, step, status, reason, body, links, subject, locale, encoding, segments, at) -> tuple:
    outcome = status if status in ("skipped", "failed") else "sent"  # queued, sending, sent, delivered
    return (
        step,
        channel,
        outcome,
        reason if outcome != "sent" else None,
        body,
        links,
        subject,
        locale,
        encoding,
        segments,
        utc(at),
    )


async def test_simulator_matches_the_engine_on_every_scenario(tmp_path):
    scenarios = sorted((JOURNEYS / "scenarios").glob("*.yaml"))
    templates = TemplateStore.load(TEMPLATES)
    compared = shortened = 0
    empty = tmp_path / "empty.db"  # migrated once, copied for every scenario
    await (await build_runtime(make_settings(f"sqlite:///{empty}"))).aclose()
    for path in scenarios:
        start = DEFAULT_START
        clock = SimulatedClock(start)
        shutil.copy(empty, tmp_path / f"{path.stem}.db")
        runtime = await build_runtime(make_settings(f"sqlite:///{tmp_path / path.stem}.db"), clock=clock)
        try:
            document = read_document(path)
            journey = find_journey(document.data["journey"], JOURNEYS)
            customer = parse_customer(document, ("customer",), document.data.get("locale"))
            events = parse_events(document, start, ("events",))
            simulated = simulate(journey, templates, customer, events, start, link_settings=runtime.settings)

            moments = sorted({e.at for e in events} | {e.at for e in simulated.timeline})
            traits = document.data["customer"].get("traits", {})
            if document.data.get("locale"):
                traits = {**traits, "locale": document.data["locale"]}
            calls_at = {}
            for event in events:
                call = (
                    TrackCall(userId=customer.user_id, event=event.name, properties=event.properties)
                    if event.name
                    else IdentifyCall(userId=customer.user_id, traits=event.traits)
                )
                calls_at.setdefault(event.at, []).append(call)
            clock.set(start)
            async with runtime.sessions() as session, session.begin():
                await ingest(session, runtime, [IdentifyCall(userId=customer.user_id, traits=traits)])
            for moment in moments:
                clock.set(moment)
                if moment in calls_at:
                    async with runtime.sessions() as session, session.begin():
                        await ingest(session, runtime, calls_at[moment])
                while await run_due_enrollments(runtime):  # the worker's step; dispatch is not simulated
                    pass

            async with runtime.sessions() as session:
                row = (await session.exec(select(Customer).where(Customer.user_id == customer.user_id))).one()
                rows = (
                    await session.exec(
                        select(Message)
                        .where(Message.customer_id == row.id, Message.journey_id == journey.id)
                        .order_by(col(Message.created_at), col(Message.id))
                    )
                ).all()
                enrollments = (
                    await session.exec(
                        select(Enrollment)
                        .where(Enrollment.customer_id == row.id, Enrollment.journey_id == journey.id)
                        .order_by(col(Enrollment.id))
                    )
                ).all()
            engine_messages = [
                _message_view(
                    m.channel,
                    m.step_id,
                    m.status,
                    m.status_reason,
                    m.body,
                    (m.template_metadata or {}).get("links", []),
                    m.subject,
                    m.locale,
                    m.encoding,
                    m.segments,
                    m.created_at,
                )
                for m in rows
            ]
            simulated_messages = [
                _message_view(
                    m["channel"],
                    m["step"],
                    m["status"],
                    m["reason"],
                    m["body"],
                    m["links"],
                    m["subject"],
                    m["locale"],
                    m["encoding"],
                    m["segments"],
                    m["at"],
                )
                for m in simulated.messages
            ]
            assert simulated_messages == engine_messages, path.name
            compared += len(engine_messages)
            shortened += sum(bool(m[5]) for m in engine_messages)
            engine_enrollments = [(e.status, e.exit_reason, e.converted_at is not None) for e in enrollments]
            simulated_enrollments = [
                (e.status, e.exit_reason, e.converted_at is not None) for e in simulated.enrollments
            ]
            assert simulated_enrollments == engine_enrollments, path.name
        finally:
            await runtime.aclose()
    assert compared >= len(scenarios)  # every scenario produces at least one message
    assert shortened >= 1  # the second-code SMS: a short link, compared as sent
