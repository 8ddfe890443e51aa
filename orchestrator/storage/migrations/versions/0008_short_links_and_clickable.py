"""messages.tracked_links and kpi_daily.clickable for SMS and WhatsApp click rates

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:33:05.696208
"""

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The rollups are a cache of counts from messages: empty them and drop the watermark, so
    # the next refresh counts every day again, `clickable` included (docs/kpis.md).
    op.execute("DELETE FROM kpi_daily")
    op.execute("DELETE FROM kpi_daily_skips")
    op.execute("DELETE FROM kpi_rollup_state WHERE name = 'kpis'")
    with op.batch_alter_table("kpi_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("clickable", sa.Integer(), nullable=False))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracked_links", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("tracked_links")

    with op.batch_alter_table("kpi_daily", schema=None) as batch_op:
        batch_op.drop_column("clickable")
