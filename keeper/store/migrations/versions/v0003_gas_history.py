"""Hourly gas per chain beside the price history: median base fee and median tip (wei, TEXT).
Created only where missing: a history file written by a keeper that kept it in SQLite alone
already has it.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "gas_history" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "gas_history",
        sa.Column("chain_id", sa.BigInteger, primary_key=True),
        sa.Column("hour_ts", sa.BigInteger, primary_key=True),
        sa.Column("base_fee_wei", sa.Text, nullable=False),
        sa.Column("tip_wei", sa.Text, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the keeper's store is never downgraded")
