"""unverified-page-events: events.unverified

True for a track sent from a web page without a valid `context.userHash`: stored for the
site's analytics, but no journey reacted to it and segments do not count it
(orchestrator/events/site_identity.py, docs/website-kpis.md). NULL for every event already
stored, so adding it rewrites nothing.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("unverified", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "unverified")
