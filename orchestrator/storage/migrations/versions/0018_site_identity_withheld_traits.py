"""site-identity: events.withheld_traits

The traits of an identify that were stored but not applied: contact addresses and consent
sent from a web page without a valid `context.userHash` (orchestrator/events/site_identity.py,
docs/website-kpis.md). NULL for every event already stored, so adding it rewrites nothing.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("withheld_traits", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("events", "withheld_traits")
