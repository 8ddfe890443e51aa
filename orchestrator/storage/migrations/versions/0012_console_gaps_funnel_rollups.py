"""console gaps: a journey's funnel from rollups by day of entry; hourly message counts; messages by template

`kpi_funnel_steps` and `kpi_funnel_skips` (a journey's send steps per day of entry, see
orchestrator/kpis/funnel_cells.py); `kpi_hourly` (the overview chart by hour or day of any
zone, orchestrator/kpis/series.py); `kpi_enrollments_daily` keyed by status and exit reason
too (the funnel's exits); `ix_enrollments_ended` (the refresh finds enrollments that ended
since); `ix_messages_template` (`GET /v1/messages?template=`).

The rollups are a cache: `kpi_enrollments_daily` is created again empty and the watermark
dropped, so the next refresh counts every day, funnel and hours included (docs/kpis.md).

Indexes are created outside batch mode: on SQLite a batch that recreates `enrollments`
would drop the triggers of 0009.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:33:27.409162
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enrollments_daily(*outcome: sa.Column) -> None:
    op.create_table(
        "kpi_enrollments_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("journey_id", sa.String(length=100), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        *outcome,
        sa.Column("enrollments", sa.Integer(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "journey_id", "holdout", *(column.name for column in outcome)),
    )


def upgrade() -> None:
    op.execute("DELETE FROM kpi_rollup_state WHERE name = 'kpis'")
    op.drop_table("kpi_enrollments_daily")
    _enrollments_daily(
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_reason", sa.String(length=255), nullable=False),
    )
    op.create_table(
        "kpi_funnel_skips",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("journey_id", sa.String(length=100), nullable=False),
        sa.Column("step_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "journey_id", "step_id", "reason"),
    )
    op.create_table(
        "kpi_funnel_steps",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("journey_id", sa.String(length=100), nullable=False),
        sa.Column("step_id", sa.String(length=255), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.PrimaryKeyConstraint("day", "journey_id", "step_id"),
    )
    op.create_table(
        "kpi_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journey_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "journey_id", "channel"),
    )
    op.create_index("ix_enrollments_ended", "enrollments", ["ended_at"], unique=False)
    op.create_index("ix_messages_template", "messages", ["template", "created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_template", table_name="messages")
    op.drop_index("ix_enrollments_ended", table_name="enrollments")
    op.drop_table("kpi_hourly")
    op.drop_table("kpi_funnel_steps")
    op.drop_table("kpi_funnel_skips")
    op.execute("DELETE FROM kpi_rollup_state WHERE name = 'kpis'")
    op.drop_table("kpi_enrollments_daily")
    _enrollments_daily()
