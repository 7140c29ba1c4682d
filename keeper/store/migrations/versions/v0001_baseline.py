"""Baseline: the ledger (ticks, txs, attempts, tx events, nonces, epoch locks) and the hourly
price history, as the first SQLite-only keeper wrote them. Each table is created only where it
is missing, so a ledger file or a history file of that keeper migrates in place.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple[sa.Column[object], ...]]:
    big, text, real = sa.BigInteger, sa.Text, sa.Float
    return {
        "ticks": (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("vault", text, nullable=False),
            sa.Column("chain_id", big),
            sa.Column("block_number", big),
            sa.Column("decision", text, nullable=False),
            sa.Column("reason", text, nullable=False),
            sa.Column("verdict", text),
            sa.Column("tx_id", sa.Integer),
            sa.Column("started_ts", real, nullable=False),
            sa.Column("finished_ts", real, nullable=False),
            sa.Column("details", text, nullable=False, server_default="{}"),
        ),
        "txs": (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("chain_id", big, nullable=False),
            sa.Column("sender", text, nullable=False),
            sa.Column("nonce", big, nullable=False),
            sa.Column("purpose", text, nullable=False),
            sa.Column("vault", text),
            sa.Column("epoch_key", text),
            sa.Column("to_addr", text),
            sa.Column("value_wei", text, nullable=False, server_default="0"),
            sa.Column("data", text, nullable=False, server_default="0x"),
            sa.Column("gas_limit", big, nullable=False),
            sa.Column("status", text, nullable=False),
            sa.Column("mined_hash", text),
            sa.Column("receipt_block", big),
            sa.Column("receipt_block_hash", text),
            sa.Column("receipt_status", sa.Integer),
            sa.Column("gas_used", big),
            sa.Column("effective_gas_price_wei", text),
            sa.Column("error", text),
            sa.Column("created_ts", real, nullable=False),
            sa.Column("updated_ts", real, nullable=False),
        ),
        "attempts": (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("tx_id", sa.Integer, sa.ForeignKey("txs.id"), nullable=False),
            sa.Column("hash", text, nullable=False, unique=True),
            sa.Column("max_fee_wei", text, nullable=False),
            sa.Column("priority_fee_wei", text, nullable=False),
            sa.Column("raw_tx", sa.LargeBinary, nullable=False),
            sa.Column("created_ts", real, nullable=False),
        ),
        "tx_events": (
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("tx_id", sa.Integer, sa.ForeignKey("txs.id"), nullable=False),
            sa.Column("kind", text, nullable=False),
            sa.Column("detail", text, nullable=False, server_default=""),
            sa.Column("ts", real, nullable=False),
        ),
        "nonces": (
            sa.Column("chain_id", big, primary_key=True),
            sa.Column("address", text, primary_key=True),
            sa.Column("next_nonce", big, nullable=False),
            sa.Column("updated_ts", real, nullable=False),
        ),
        "epoch_locks": (
            sa.Column("vault", text, primary_key=True),
            sa.Column("epoch", text, primary_key=True),
            sa.Column("owner", text, nullable=False),
            sa.Column("expires_ts", real, nullable=False),
            sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        ),
        "price_history": (
            sa.Column("vault", text, primary_key=True),
            sa.Column("hour_ts", big, primary_key=True),
            sa.Column("prices", text, nullable=False),
        ),
    }


_INDEXES = (
    ("ticks_vault", "ticks", ["vault", "id"]),
    ("txs_status", "txs", ["chain_id", "sender", "status"]),
    ("txs_epoch", "txs", ["vault", "epoch_key"]),
)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns)
    for index, table, cols in _INDEXES:
        if table not in existing:
            op.create_index(index, table, cols)


def downgrade() -> None:
    raise NotImplementedError("the keeper's store is never downgraded")
