"""segments live: published segment definitions, profile changes, cap slots given back

- `segment_definitions`: the segment files every process evaluates, published at start-up
  and by a reload (orchestrator/segments/live.py), so workers pick a reload up;
- `customer_profile_changes` and `segment_states.profile_watermark`: customers an import or
  an erasure changed, re-evaluated by the next segment round (orchestrator/segments/refresh.py);
- a trigger on `messages` that deletes a message's frequency-cap slots when it ends `failed`
  or `skipped`: a send that never went out does not count against the cap
  (docs/frequency-caps.md). SQLite: a later batch migration that recreates `messages` drops
  the trigger; it must create it again (TRIGGERS below).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 05:55:00.000000
"""

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here, not imported: a migration must not change when the code does. Row-level
# with a WHEN, so the many status updates that free nothing (sent, delivered) never run it.
TRIGGERS = {
    "postgresql": [
        "CREATE OR REPLACE FUNCTION give_back_cap_slots() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    DELETE FROM frequency_cap_slots WHERE message_id = NEW.id;\n    RETURN NULL;\nEND $$",
        "CREATE TRIGGER give_back_cap_slots AFTER UPDATE OF status ON messages FOR EACH ROW "
        "WHEN (NEW.status IN ('failed', 'skipped') AND OLD.status IS DISTINCT FROM NEW.status) "
        "EXECUTE FUNCTION give_back_cap_slots()",
    ],
    "sqlite": [
        "CREATE TRIGGER give_back_cap_slots AFTER UPDATE OF status ON messages "
        "WHEN NEW.status IN ('failed', 'skipped') AND OLD.status IS NOT NEW.status "
        "BEGIN DELETE FROM frequency_cap_slots WHERE message_id = NEW.id; END",
    ],
}
DROP_TRIGGERS = {
    "postgresql": ["DROP FUNCTION IF EXISTS give_back_cap_slots() CASCADE"],
    "sqlite": ["DROP TRIGGER IF EXISTS give_back_cap_slots"],
}


def upgrade() -> None:
    op.create_table(
        "segment_definitions",
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
    )
    op.create_table(
        "customer_profile_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("segment_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_watermark", sa.BigInteger(), server_default="0", nullable=False))
    for statement in TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)
    with op.batch_alter_table("segment_states", schema=None) as batch_op:
        batch_op.drop_column("profile_watermark")
    op.drop_table("customer_profile_changes")
    op.drop_table("segment_definitions")
