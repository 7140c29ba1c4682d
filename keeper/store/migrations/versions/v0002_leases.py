"""Leases with fencing tokens: epoch_locks.token (per vault, rising at every acquisition) and
txs.owner (the keeper instance that created a transaction).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("epoch_locks") as batch:
        batch.add_column(sa.Column("token", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("txs") as batch:
        batch.add_column(sa.Column("owner", sa.Text))


def downgrade() -> None:
    raise NotImplementedError("the keeper's store is never downgraded")
