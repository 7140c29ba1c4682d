"""The Sender's value objects: TxRequest in, ExecutionResult out, SenderSettings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keeper.ledger import TxRow, TxStatus

FROZEN = {"frozen": True, "slots": True, "kw_only": True}


@dataclass(**FROZEN)
class TxRequest:
    """One transaction to send. `gas_limit` None -> estimate + 20%."""

    to: str | None
    data: bytes = b""
    value_wei: int = 0
    gas_limit: int | None = None
    purpose: str = "call"
    vault: str | None = None
    epoch_key: str | None = None  # idempotency: one tx per (vault, epoch_key)
    emergency: bool = False  # collateral-protecting: uses the emergency fee cap
    private_only: bool = False  # swap-bearing: private endpoint only, no public fallback
    deadline_ts: int | None = None  # the call's on-chain deadline: past it, cancel by NOOP


@dataclass(**FROZEN)
class SenderSettings:
    chain_id: int
    max_fee_wei: int
    emergency_max_fee_wei: int | None = None
    budget_wei: int | None = None  # worst-case gas_limit x max_fee per tx
    confirmations: int = 1
    replace_after_blocks: int = 3
    bump_percent: str = "12.5"
    reward_percentile: float = 50.0
    fee_history_blocks: int = 10
    min_tip_wei: int = 0
    reprice_from_market: bool = True  # replacements also follow eth_feeHistory (within cap)
    private_fallback_blocks: int = 25
    # the epoch lease: renewed every third of it while a tx is driven, so a dead keeper's
    # lease expires this long after its last heartbeat (a dead process on this host: at once)
    epoch_lock_ttl_s: float = 30.0
    max_wait_blocks: int = 200
    poll_interval_s: float = 0.25
    block_timeout_s: float = 120.0

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> SenderSettings:
        """From a keeper.config.KeeperConfig."""
        gas, net = cfg.gas, cfg.network
        values: dict[str, Any] = {
            "chain_id": net.chain_id,
            "max_fee_wei": gas.max_fee_wei,
            "emergency_max_fee_wei": gas.emergency_max_fee_wei,
            "budget_wei": gas.budget_wei,
            "confirmations": net.confirmations,
            "replace_after_blocks": gas.replace_after_blocks,
            "bump_percent": str(gas.bump_percent),
            "reward_percentile": gas.priority_fee_percentile,
            "block_timeout_s": max(30.0, 10 * net.block_time_s),
            "private_fallback_blocks": net.private_fallback_blocks,
            "min_tip_wei": int(gas.min_tip_wei),
            "epoch_lock_ttl_s": float(cfg.lease_s),
        }
        return cls(**{**values, **overrides})


@dataclass(**FROZEN)
class Attempt:
    hash: str
    max_fee_wei: int
    priority_fee_wei: int


@dataclass(**FROZEN)
class ExecutionResult:
    """The outcome of one transaction: every attempt, the landed one, its receipt."""

    tx_id: int
    chain_id: int
    sender: str
    nonce: int
    status: TxStatus
    attempts: tuple[Attempt, ...]
    tx_hash: str | None = None  # the attempt that landed
    receipt_block: int | None = None
    receipt_block_hash: str | None = None
    receipt_status: int | None = None
    gas_used: int | None = None
    effective_gas_price_wei: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == TxStatus.CONFIRMED and self.receipt_status == 1

    @property
    def fee_paid_wei(self) -> int | None:
        if self.gas_used is None or self.effective_gas_price_wei is None:
            return None
        return self.gas_used * self.effective_gas_price_wei

    @classmethod
    def from_row(cls, row: TxRow) -> ExecutionResult:
        return cls(
            tx_id=row.id,
            chain_id=row.chain_id,
            sender=row.sender,
            nonce=row.nonce,
            status=row.status,
            tx_hash=row.mined_hash,
            receipt_block=row.receipt_block,
            receipt_block_hash=row.receipt_block_hash,
            receipt_status=row.receipt_status,
            gas_used=row.gas_used,
            effective_gas_price_wei=row.effective_gas_price_wei,
            error=row.error,
            attempts=tuple(
                Attempt(hash=a.hash, max_fee_wei=a.max_fee_wei, priority_fee_wei=a.priority_fee_wei)
                for a in row.attempts
            ),
        )
