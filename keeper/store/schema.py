"""The store's tables (SQLAlchemy Core). The migrations in keeper/store/migrations create them;
this module is what the queries use. Amounts in wei are TEXT: they overflow 64-bit integers."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

ticks = Table(
    "ticks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vault", Text, nullable=False),
    Column("chain_id", BigInteger),
    Column("block_number", BigInteger),
    Column("decision", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("verdict", Text),
    Column("tx_id", Integer),
    Column("started_ts", Float, nullable=False),
    Column("finished_ts", Float, nullable=False),
    Column("details", Text, nullable=False, server_default="{}"),
)

txs = Table(
    "txs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("sender", Text, nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("vault", Text),
    Column("epoch_key", Text),
    Column("to_addr", Text),
    Column("value_wei", Text, nullable=False, server_default="0"),
    Column("data", Text, nullable=False, server_default="0x"),
    Column("gas_limit", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("mined_hash", Text),
    Column("receipt_block", BigInteger),
    Column("receipt_block_hash", Text),
    Column("receipt_status", Integer),
    Column("gas_used", BigInteger),
    Column("effective_gas_price_wei", Text),
    Column("error", Text),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("owner", Text),  # the keeper instance that created it (host:pid:id)
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tx_id", Integer, ForeignKey("txs.id"), nullable=False),
    Column("hash", Text, nullable=False, unique=True),
    Column("max_fee_wei", Text, nullable=False),
    Column("priority_fee_wei", Text, nullable=False),
    Column("raw_tx", LargeBinary, nullable=False),
    Column("created_ts", Float, nullable=False),
)

tx_events = Table(
    "tx_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tx_id", Integer, ForeignKey("txs.id"), nullable=False),
    Column("kind", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("ts", Float, nullable=False),
)

nonces = Table(
    "nonces",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("address", Text, primary_key=True),
    Column("next_nonce", BigInteger, nullable=False),
    Column("updated_ts", Float, nullable=False),
)

epoch_locks = Table(
    "epoch_locks",
    metadata,
    Column("vault", Text, primary_key=True),
    Column("epoch", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("expires_ts", Float, nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("token", BigInteger, nullable=False, server_default="0"),  # the fencing token
)

price_history = Table(
    "price_history",
    metadata,
    Column("vault", Text, primary_key=True),
    Column("hour_ts", BigInteger, primary_key=True),
    Column("prices", Text, nullable=False),
)

gas_history = Table(
    "gas_history",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("hour_ts", BigInteger, primary_key=True),
    Column("base_fee_wei", Text, nullable=False),
    Column("tip_wei", Text, nullable=False),
)
