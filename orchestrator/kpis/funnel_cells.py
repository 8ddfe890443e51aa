"""A journey funnel's cells, by the UTC day its enrollments entered: per send step
(`kpi_funnel_steps`, `kpi_funnel_skips`) and per outcome (`kpi_enrollments_daily`, see
`cells.enrollment_cells`).

The rollup refresh stores them for whole days (`orchestrator.kpis.rollup`); a funnel over
part of a day counts the same cells from enrollments, messages and conversions directly,
so both agree by construction. Every figure is additive over days: an enrollment enters
on one day, so a step's `reached` (distinct enrollments) adds up across days too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from orchestrator.kpis.cells import FAILED_STATUSES, conversions, enrollments
from orchestrator.kpis.scope import calendar_day, counting, messages, skip_reason, split_by_whole_days
from orchestrator.vocabulary import MessageStatus

STEP_KEY = ("day", "journey_id", "step_id")
STEP_MEASURES = ("reached", "messages", "sent", "delivered", "failed", "skipped", "conversions", "revenue")


def _keys(dialect: str, step_column) -> list:
    e = enrollments.c
    return [
        calendar_day(e.entered_at, dialect).label("day"),
        e.journey_id.label("journey_id"),
        sa.func.coalesce(step_column, "").label("step_id"),
    ]


def step_cells(dialect: str, conditions: list) -> sa.Select:
    """Per (day of entry, journey, step) of the enrollments matching `conditions`: the
    enrollments with a message for the step, their messages by outcome, the orders credited."""
    e, m, c = enrollments.c, messages.c, conversions.c
    keys = _keys(dialect, m.step_id)
    sends = (
        sa.select(
            *keys,
            sa.func.count(sa.distinct(m.enrollment_id)).label("reached"),
            sa.func.count().label("messages"),
            counting(m.sent_at.is_not(None)).label("sent"),
            counting(m.delivered_at.is_not(None)).label("delivered"),
            counting(m.status.in_(FAILED_STATUSES)).label("failed"),
            counting(m.status == MessageStatus.skipped).label("skipped"),
            sa.literal(0).label("conversions"),
            sa.cast(sa.null(), sa.Numeric(16, 2)).label("revenue"),
        )
        .select_from(messages.join(enrollments, e.id == m.enrollment_id))
        .where(*conditions)
        .group_by(*keys)
    )
    keys = _keys(dialect, c.step_id)
    credited = (
        sa.select(
            *keys,
            *(sa.literal(0).label(name) for name in STEP_MEASURES[:6]),
            sa.func.count().label("conversions"),
            sa.func.sum(c.revenue).label("revenue"),
        )
        .select_from(conversions.join(enrollments, e.id == c.enrollment_id))
        .where(*conditions)
        .group_by(*keys)
    )
    both = sa.union_all(sends, credited).subquery("step_parts")
    key = [both.c[name] for name in STEP_KEY]
    return sa.select(*key, *(sa.func.sum(both.c[name]).label(name) for name in STEP_MEASURES)).group_by(*key)


def step_skip_cells(dialect: str, conditions: list) -> sa.Select:
    e, m = enrollments.c, messages.c
    keys = _keys(dialect, m.step_id)
    reason = skip_reason(m.status_reason, dialect).label("reason")  # a frequency cap: one bucket per cap
    return (
        sa.select(*keys, reason, sa.func.count().label("count"))
        .select_from(messages.join(enrollments, e.id == m.enrollment_id))
        .where(*conditions, m.status == MessageStatus.skipped)
        .group_by(*keys, reason)
    )


def entered_cells(
    table: sa.Table,
    columns: list[str],
    journey_id: str,
    since: datetime | None,
    until: datetime | None,
    count: Callable[[list], sa.Select],
) -> sa.Subquery:
    """`columns` of a journey's cells for enrollments entered in [since, until): whole UTC
    days from the rollup `table`, the parts of days at either end counted by `count(conditions)`."""
    whole_days, edges = split_by_whole_days(since, until)
    parts = []
    if whole_days is not None:
        first, end = whole_days
        r = table.c
        parts.append(
            sa.select(*(r[name] for name in columns)).where(
                r.journey_id == journey_id,
                *([r.day >= first.date()] if first else []),
                *([r.day < end.date()] if end else []),
            )
        )
    e = enrollments.c
    for start, end in edges:
        counted = count([e.journey_id == journey_id, e.entered_at >= start, e.entered_at < end]).subquery()
        parts.append(sa.select(*(counted.c[name] for name in columns)))
    return (sa.union_all(*parts) if len(parts) > 1 else parts[0]).subquery("cells")
