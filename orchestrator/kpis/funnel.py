"""A journey's funnel: entries, each step in journey order, exits, conversions and lift.

Enrollments are counted by entry time in [since, until), and a step's figures are those of
these enrollments. What "reached" means depends on what the engine records:

- the first step: every enrollment (entering is reaching it);
- a send step: enrollments with a message for it, whatever became of the message
  (holdout enrollments too: their message is recorded as skipped, "holdout group");
- an exit step: enrollments that left with its reason;
- wait, wait_for and if steps leave no trace once passed, so their `reached` is None;
  `waiting` (active enrollments whose cursor is on the step) is known for every step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.journeys.compiler import CompiledJourney, _default_id
from orchestrator.kpis.cells import FAILED_STATUSES, conversions
from orchestrator.kpis.formulas import money, percent
from orchestrator.kpis.lift import lift_report
from orchestrator.kpis.scope import counting, messages, without_jit
from orchestrator.storage.models import Enrollment
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus

enrollments = Enrollment.__table__
_BRANCHES = {"if": (("then", "then_"), ("else", "else_"))}


def steps_in_order(journey: CompiledJourney) -> list[dict[str, Any]]:
    """Every step as the journey file lists it, branches right after their parent step."""
    ordered: list[dict[str, Any]] = []

    def walk(steps: list, location: tuple, parent: str | None) -> None:
        for i, step in enumerate(steps):
            step_id = step.id or _default_id(location + (i,))
            node = journey.nodes[step_id]
            ordered.append({"id": step_id, "kind": node.kind, "branch": parent})
            here = location + (i,)
            if node.kind == "if":
                walk(step.then, here + ("then",), f"{step_id}: then")
                walk(step.else_, here + ("else",), f"{step_id}: else")
            elif node.kind == "wait_for":
                walk(step.wait_for.on_event, here + ("wait_for", "on_event"), f"{step_id}: on_event")
                walk(step.wait_for.on_timeout, here + ("wait_for", "on_timeout"), f"{step_id}: on_timeout")

    walk(journey.definition.steps, ("steps",), None)
    return ordered


def _send_figures(node, send, reasons: dict[str, int], credit) -> dict[str, Any]:
    sent, delivered = (send["sent"], send["delivered"]) if send else (0, 0)
    return dict(
        channel=node.send.channel.value,
        template=node.send.template,
        reached=send["reached"] if send else 0,
        messages=send["messages"] if send else 0,
        sent=sent,
        delivered=delivered,
        delivery_rate=percent(delivered, sent),
        failed=send["failed"] if send else 0,
        skipped=send["skipped"] if send else 0,
        skipped_by_reason=dict(sorted(reasons.items())),
        conversions=credit.conversions if credit else 0,
        revenue=money((credit.revenue if credit else None) or 0),
    )


def _entered_between(since: datetime | None, until: datetime | None) -> list:
    conditions = []
    if since is not None:
        conditions.append(enrollments.c.entered_at >= since)
    if until is not None:
        conditions.append(enrollments.c.entered_at < until)
    return conditions


async def journey_funnel(
    session: AsyncSession, journey: CompiledJourney, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    await without_jit(session)
    e, m, c = enrollments.c, messages.c, conversions.c
    entered = [e.journey_id == journey.id, *_entered_between(since, until)]
    outcome_rows = (
        (
            await session.exec(
                sa.select(
                    e.status,
                    e.exit_reason,
                    e.holdout,
                    sa.func.count().label("n"),
                    sa.func.count(e.converted_at).label("converted"),
                )
                .where(*entered)
                .group_by(e.status, e.exit_reason, e.holdout)
            )
        )
        .mappings()
        .all()
    )
    waiting = dict(
        (
            await session.exec(
                sa.select(e.cursor, sa.func.count())
                .where(*entered, e.status == EnrollmentStatus.active)
                .group_by(e.cursor)
            )
        ).all()
    )

    of_entrants = messages.join(enrollments, e.id == m.enrollment_id)
    send_rows = (
        (
            await session.exec(
                sa.select(
                    m.step_id,
                    sa.func.count(sa.distinct(m.enrollment_id)).label("reached"),
                    sa.func.count().label("messages"),
                    counting(m.sent_at.is_not(None)).label("sent"),
                    counting(m.delivered_at.is_not(None)).label("delivered"),
                    counting(m.status.in_(FAILED_STATUSES)).label("failed"),
                    counting(m.status == MessageStatus.skipped).label("skipped"),
                )
                .select_from(of_entrants)
                .where(*entered)
                .group_by(m.step_id)
            )
        )
        .mappings()
        .all()
    )
    reasons: dict[str, dict[str, int]] = {}
    for step_id, reason, n in (
        await session.exec(
            sa.select(m.step_id, m.status_reason, sa.func.count())
            .select_from(of_entrants)
            .where(*entered, m.status == MessageStatus.skipped)
            .group_by(m.step_id, m.status_reason)
        )
    ).all():
        reasons.setdefault(step_id, {})[reason or "unspecified"] = n
    credited = {
        row.step_id: row
        for row in (
            await session.exec(
                sa.select(c.step_id, sa.func.count().label("conversions"), sa.func.sum(c.revenue).label("revenue"))
                .select_from(conversions.join(enrollments, e.id == c.enrollment_id))
                .where(*entered)
                .group_by(c.step_id)
            )
        ).all()
    }

    total = sum(r["n"] for r in outcome_rows)
    exits: dict[tuple[str, str | None], int] = {}
    groups = {False: [0, 0], True: [0, 0]}
    for row in outcome_rows:
        if row["status"] != EnrollmentStatus.active:
            exits[(row["status"], row["exit_reason"])] = exits.get((row["status"], row["exit_reason"]), 0) + row["n"]
        groups[bool(row["holdout"])][0] += row["n"]
        groups[bool(row["holdout"])][1] += row["converted"]
    sends = {row["step_id"]: row for row in send_rows}
    steps = []
    for position, step in enumerate(steps_in_order(journey)):
        node = journey.nodes[step["id"]]
        figures: dict[str, Any] = {**step, "waiting": waiting.get(step["id"], 0), "reached": None}
        if node.kind == "send":
            figures.update(
                _send_figures(node, sends.get(step["id"]), reasons.get(step["id"], {}), credited.get(step["id"]))
            )
        elif node.kind == "exit":
            figures["reached"] = figures["exited"] = exits.get((EnrollmentStatus.exited, node.exit_reason), 0)
        if position == 0:
            figures["reached"] = total  # entering is reaching the first step
        steps.append(figures)
    return {
        "journey": journey.id,
        "version": journey.version,
        "since": since,
        "until": until,
        "entered": total,
        "active": sum(r["n"] for r in outcome_rows if r["status"] == EnrollmentStatus.active),
        "goal_reached": groups[False][1] + groups[True][1],
        "conversions": sum(row.conversions for row in credited.values()),
        "revenue": money(sum(float(row.revenue or 0) for row in credited.values())),
        "steps": steps,
        "exits": [
            {"status": status, "reason": reason, "count": n}
            for (status, reason), n in sorted(exits.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        ],
        "lift": lift_report(journey.id, {holdout: tuple(counts) for holdout, counts in groups.items()}),
    }
