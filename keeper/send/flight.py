"""The state of one transaction the Sender is driving: attempts, fees, inclusion, fallbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keeper.send.fees import Fees


@dataclass(slots=True)
class Flight:
    """Mutable tracking state of one in-flight tx: its fields, every signed attempt, and what
    the chain has shown of it so far. Owned by one Sender call; never shared."""

    tx_id: int
    nonce: int
    fields: dict[str, Any]  # unsigned tx fields without fees
    cap_wei: int
    fees: Fees | None = None
    raws: dict[str, bytes] = field(default_factory=dict)  # hash -> raw, in attempt order
    last_sent_block: int = 0
    accepted: bool = False  # the node accepted at least one attempt
    mined: tuple[str, int, str] | None = None  # (hash, block, block hash)
    cancel_hashes: set[str] = field(default_factory=set)
    lost_checks: int = 0
    private: bool = False  # broadcasting through the private endpoint
    private_only: bool = False  # swap-bearing: never fall back to the public mempool
    first_sent_block: int | None = None
    deadline_ts: int | None = None  # past it the call would revert: cancel by NOOP instead
    lease: Any = None  # the keeper.send.lease.Lease this flight is driven under
    cap_key: str = "gas.max_fee_gwei"  # the config key whose limit `cap_wei` is
    vault: str | None = None

    @property
    def last_hash(self) -> str:
        return next(reversed(self.raws))


def hex0x(value: bytes | str) -> str:
    """A hash or raw tx as 0x-prefixed hex, whichever form web3 handed back."""
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()
