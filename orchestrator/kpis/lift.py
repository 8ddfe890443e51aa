"""Holdout lift: did the journey's messages make customers reach its goal more often?

A journey with `holdout: N` enrolls N % of entrants in a control group that is never
messaged (their sends are recorded as skipped, "holdout group"). The goal is tracked for
both groups alike (`enrollments.converted_at`: the goal event within the window after
entry), so the two conversion rates compare like with like:

    conversion rate = enrollments that reached the goal / enrollments     (per group)
    lift = treatment rate − holdout rate                    (percentage points)
    relative lift = lift / holdout rate × 100

with a 95 % confidence interval for the difference (see
`formulas.difference_of_proportions`). Enrollments are counted by entry time in [since, until).
Read from `kpi_enrollments_daily`, which the worker keeps current (`rollup.refresh_rollups`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.kpis.cells import enrollment_cells
from orchestrator.kpis.formulas import difference_of_proportions, percent
from orchestrator.kpis.funnel_cells import entered_cells
from orchestrator.kpis.scope import without_jit
from orchestrator.storage.kpi_models import KpiEnrollmentCell

rollup = KpiEnrollmentCell.__table__


async def enrollment_groups(
    session: AsyncSession, journey_id: str, since: datetime | None, until: datetime | None
) -> dict[bool, tuple[int, int]]:
    """holdout? → (enrollments, converted), from the daily rollup for whole days and from
    the enrollments themselves for the parts of days at either end of the range."""
    await without_jit(session)
    dialect = session.get_bind().dialect.name
    cells = entered_cells(
        rollup,
        ["holdout", "enrollments", "converted"],
        journey_id,
        since,
        until,
        lambda where: enrollment_cells(dialect, where),
    )
    rows = (
        await session.exec(
            sa.select(cells.c.holdout, sa.func.sum(cells.c.enrollments), sa.func.sum(cells.c.converted)).group_by(
                cells.c.holdout
            )
        )
    ).all()
    groups = {False: (0, 0), True: (0, 0)}
    for holdout, n, converted in rows:
        groups[bool(holdout)] = (int(n or 0), int(converted or 0))
    return groups


def lift_report(journey_id: str, groups: dict[bool, tuple[int, int]]) -> dict[str, Any]:
    (n_t, x_t), (n_h, x_h) = groups[False], groups[True]
    difference = difference_of_proportions(x_t, n_t, x_h, n_h)
    return {
        "journey": journey_id,
        "treatment": {"enrollments": n_t, "converted": x_t, "conversion_rate": percent(x_t, n_t)},
        "holdout": {"enrollments": n_h, "converted": x_h, "conversion_rate": percent(x_h, n_h)},
        "lift": difference.difference,
        "relative_lift": difference.relative,
        "ci_low": difference.ci_low,
        "ci_high": difference.ci_high,
        "significant": difference.significant,
    }


async def holdout_lift(
    session: AsyncSession, journey_id: str, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    return lift_report(journey_id, await enrollment_groups(session, journey_id, since, until))
