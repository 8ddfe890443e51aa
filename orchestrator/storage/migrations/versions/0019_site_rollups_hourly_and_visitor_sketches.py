"""site-rollups: site_hourly, and visitors as mergeable sketches instead of per-cell counts

`site_hourly` (visits per UTC hour and cell: a range's whole hours at either end are read
there, orchestrator/kpis/site.py) and `visitor_sketch` in both site rollups
(orchestrator/kpis/distinct.py), replacing `site_daily.visitors`, which counted a visitor
once per day and cell; `kpi_rollup_state.resume_after`, where the first fold over stored
page calls, done in several commits, records how far it got (orchestrator/kpis/site_fold.py).

The rollups are a cache: `site_daily` is created again empty, and the worker's next fold
counts both tables from the visits already folded (no 'site-cells' state yet), without
folding the page calls again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _site_cells(name: str, period: sa.Column, *figures: sa.Column) -> None:
    op.create_table(
        name,
        period,
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("journey_id", sa.String(length=100), nullable=False),
        sa.Column("broadcast_id", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        *figures,
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(period.name, "channel", "journey_id", "broadcast_id", "source"),
    )


def _sketch() -> sa.Column:
    return sa.Column("visitor_sketch", sa.LargeBinary(), nullable=False)


def upgrade() -> None:
    op.drop_table("site_daily")
    _site_cells("site_daily", sa.Column("day", sa.Date(), nullable=False), _sketch())
    _site_cells("site_hourly", sa.Column("hour", sa.DateTime(timezone=True), nullable=False), _sketch())
    op.execute("DELETE FROM kpi_rollup_state WHERE name = 'site-cells'")
    op.add_column("kpi_rollup_state", sa.Column("resume_after", sa.String(length=260), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM kpi_rollup_state WHERE name = 'site-first-fold'")
    with op.batch_alter_table("kpi_rollup_state") as batch_op:
        batch_op.drop_column("resume_after")
    op.drop_table("site_hourly")
    op.drop_table("site_daily")
    _site_cells(
        "site_daily", sa.Column("day", sa.Date(), nullable=False), sa.Column("visitors", sa.Integer(), nullable=False)
    )
    # The older fold counts site_daily only when it folds everything: make it do so.
    op.execute("DELETE FROM kpi_rollup_state WHERE name IN ('site', 'site-cells')")
