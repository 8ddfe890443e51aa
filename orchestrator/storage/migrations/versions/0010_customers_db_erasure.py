"""customers-db: erased customers and the hashed tombstones of their addresses

`customers.erased_at`, with a CHECK that an erased customer holds no address, and
`erased_addresses`: keyed hashes of erased e-mail addresses and phone numbers
(orchestrator/customers/erasure.py).

SQLite: the CHECK comes with the column (ALTER TABLE ADD COLUMN takes column constraints),
so `customers` is not recreated.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ERASED_HOLDS_NO_ADDRESS = "erased_at IS NULL OR (email IS NULL AND phone IS NULL AND whatsapp IS NULL)"


def upgrade() -> None:
    op.create_table(
        "erased_addresses",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(address_hash) = 64", name="ck_erased_addresses_hash"),
        sa.PrimaryKeyConstraint("address_hash"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE customers ADD COLUMN erased_at DATETIME "
            f"CONSTRAINT ck_customers_erased_holds_no_address CHECK ({ERASED_HOLDS_NO_ADDRESS})"
        )
    else:
        op.add_column("customers", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        op.create_check_constraint("ck_customers_erased_holds_no_address", "customers", ERASED_HOLDS_NO_ADDRESS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE customers DROP COLUMN erased_at")  # SQLite ≥ 3.35
    else:
        op.drop_constraint("ck_customers_erased_holds_no_address", "customers", type_="check")
        op.drop_column("customers", "erased_at")
    op.drop_table("erased_addresses")
