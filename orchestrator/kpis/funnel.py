"""A journey's funnel: entries, each step in journey order, exits, conversions and lift.

Enrollments are counted by entry time in [since, until), and a step's figures are those of
these enrollments. What "reached" means depends on what the engine records:

- the first step: every enrollment (entering is reaching it);
- a send step: enrollments with a message for it, whatever became of the message
  (holdout enrollments too: their message is recorded as skipped, "holdout group");
- an exit step: enrollments that left with its reason;
- wait, wait_for and if steps leave no trace once passed, so their `reached` is None;
  `waiting` (active enrollments whose cursor is on the step) is known for every step.

Everything but `waiting` is read from cells per day of entry (`funnel_cells`): whole days
from the rollups the worker refreshes, parts of days at either end of the range counted live
with the same queries, so the figures are those of a live count as of the last refresh.
`waiting` is counted live from the active enrollments (a cursor moves without a timestamp
the refresh could watch).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.journeys.compiler import CompiledJourney, _default_id
from orchestrator.kpis.cells import enrollment_cells, enrollments
from orchestrator.kpis.formulas import money, percent
from orchestrator.kpis.funnel_cells import STEP_MEASURES, entered_cells, step_cells, step_skip_cells
from orchestrator.kpis.lift import lift_report
from orchestrator.kpis.scope import capped_count, without_jit
from orchestrator.storage.kpi_models import KpiEnrollmentCell, KpiFunnelSkip, KpiFunnelStep
from orchestrator.vocabulary import EnrollmentStatus

outcomes_table, steps_table = KpiEnrollmentCell.__table__, KpiFunnelStep.__table__
skips_table = KpiFunnelSkip.__table__
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


def _send_figures(node, send, reasons: dict[str, int]) -> dict[str, Any]:
    def figure(name: str) -> int:
        return int(send[name] or 0) if send else 0

    sent, delivered = figure("sent"), figure("delivered")
    return dict(
        channel=node.send.channel.value,
        template=node.send.template,
        reached=figure("reached"),
        messages=figure("messages"),
        sent=sent,
        delivered=delivered,
        delivery_rate=percent(delivered, sent),
        failed=figure("failed"),
        skipped=figure("skipped"),
        skipped_by_reason=dict(sorted(reasons.items())),
        capped=capped_count(reasons),
        conversions=figure("conversions"),
        revenue=money((send["revenue"] if send else None) or 0),
    )


async def _summed(session: AsyncSession, cells: sa.Subquery, keys: list[str], measures: list[str]):
    key = [cells.c[name] for name in keys]
    query = sa.select(*key, *(sa.func.sum(cells.c[name]).label(name) for name in measures)).group_by(*key)
    return (await session.exec(query)).mappings().all()


async def journey_funnel(
    session: AsyncSession, journey: CompiledJourney, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    await without_jit(session)
    dialect = session.get_bind().dialect.name
    e = enrollments.c

    def entered(table, columns, count):
        return entered_cells(table, columns, journey.id, since, until, lambda where: count(dialect, where))

    outcome_rows = [
        {
            "status": row["status"],
            "exit_reason": row["exit_reason"] or None,  # '' in the rollup's key
            "holdout": row["holdout"],
            "n": int(row["enrollments"] or 0),
            "converted": int(row["converted"] or 0),
        }
        for row in await _summed(
            session,
            entered(outcomes_table, ["status", "exit_reason", "holdout", "enrollments", "converted"], enrollment_cells),
            ["status", "exit_reason", "holdout"],
            ["enrollments", "converted"],
        )
    ]
    waiting = dict(
        (
            await session.exec(
                sa.select(e.cursor, sa.func.count())
                .where(
                    e.journey_id == journey.id,
                    e.status == EnrollmentStatus.active,
                    *([e.entered_at >= since] if since else []),
                    *([e.entered_at < until] if until else []),
                )
                .group_by(e.cursor)
            )
        ).all()
    )
    sends = {
        row["step_id"]: row
        for row in await _summed(
            session, entered(steps_table, ["step_id", *STEP_MEASURES], step_cells), ["step_id"], list(STEP_MEASURES)
        )
    }
    reasons: dict[str, dict[str, int]] = {}
    for row in await _summed(
        session, entered(skips_table, ["step_id", "reason", "count"], step_skip_cells), ["step_id", "reason"], ["count"]
    ):
        reasons.setdefault(row["step_id"], {})[row["reason"]] = int(row["count"])

    total = sum(r["n"] for r in outcome_rows)
    exits: dict[tuple[str, str | None], int] = {}
    groups = {False: [0, 0], True: [0, 0]}
    for row in outcome_rows:
        if row["status"] != EnrollmentStatus.active:
            exits[(row["status"], row["exit_reason"])] = exits.get((row["status"], row["exit_reason"]), 0) + row["n"]
        groups[bool(row["holdout"])][0] += row["n"]
        groups[bool(row["holdout"])][1] += row["converted"]
    steps = []
    for position, step in enumerate(steps_in_order(journey)):
        node = journey.nodes[step["id"]]
        figures: dict[str, Any] = {**step, "waiting": waiting.get(step["id"], 0), "reached": None}
        if node.kind == "send":
            figures.update(_send_figures(node, sends.get(step["id"]), reasons.get(step["id"], {})))
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
        "conversions": sum(int(row["conversions"] or 0) for row in sends.values()),
        "revenue": money(sum(float(row["revenue"] or 0) for row in sends.values())),
        "steps": steps,
        "exits": [
            {"status": status, "reason": reason, "count": n}
            for (status, reason), n in sorted(exits.items(), key=lambda item: (item[0][0], item[0][1] or ""))
        ],
        "lift": lift_report(journey.id, {holdout: tuple(counts) for holdout, counts in groups.items()}),
    }
