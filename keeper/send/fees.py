"""EIP-1559 fees, pure: `eth_feeHistory` output -> Fees, and the replacement ladder.

Formula (documented here, pinned in tests/unit/test_fees.py):
  next_base = the last `baseFeePerGas` entry (feeHistory returns one more entry than blocks:
              the base fee of the block after the newest one)
  tip       = the median over the sampled blocks of the reward at the requested percentile,
              raised to `min_tip_wei`
  max_fee   = HEADROOM x next_base + tip, clamped to the cap
HEADROOM = 2: the base fee can rise at most 12.5% per block, and 1.125**6 ~= 2.03, so a fee cap
of twice the base fee survives six consecutive full blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from keeper.errors import FeeCapExceeded
from keeper.units import Wei

HEADROOM = 2
MIN_BUMP_PERCENT = Fraction(25, 2)  # 12.5%: geth needs 10%, OpenEthereum/pymaker 12.5%


@dataclass(frozen=True, slots=True, kw_only=True)
class Fees:
    """One EIP-1559 price: fee cap and tip, in wei."""

    max_fee_wei: Wei
    priority_fee_wei: Wei

    def __post_init__(self) -> None:
        if self.priority_fee_wei < 0 or self.max_fee_wei < 0:
            raise ValueError("fees must be non-negative")
        if self.priority_fee_wei > self.max_fee_wei:
            raise ValueError(
                f"priority_fee_wei ({self.priority_fee_wei}) must be <= "
                f"max_fee_wei ({self.max_fee_wei})"
            )

    def as_tx_fields(self) -> dict[str, int]:
        return {"maxFeePerGas": self.max_fee_wei, "maxPriorityFeePerGas": self.priority_fee_wei}


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    if not ordered:
        return 0
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid] + 1) // 2  # round half up: never under-tip


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def next_base_fee(history: Mapping[str, Any]) -> Wei:
    """The base fee of the next block, from eth_feeHistory's `baseFeePerGas`."""
    bases = history.get("baseFeePerGas") or []
    if not bases:
        raise ValueError("fee history has no baseFeePerGas")
    return Wei(_int(bases[-1]))


def tip_from_history(history: Mapping[str, Any], column: int = 0) -> Wei:
    """Median of the `column`-th requested reward percentile over the sampled blocks."""
    rewards = history.get("reward") or []
    return Wei(_median([_int(row[column]) for row in rewards if len(row) > column]))


def suggest_fees(
    history: Mapping[str, Any],
    *,
    cap_wei: int | None,
    min_tip_wei: int = 0,
    reward_column: int = 0,
    cap_key: str = "gas.max_fee_gwei",
) -> Fees:
    """Fees for the next block; raises FeeCapExceeded if the cap cannot pay base fee plus tip.
    `cap_key` is the config key whose limit `cap_wei` is (named in the error)."""
    base = next_base_fee(history)
    tip = max(tip_from_history(history, reward_column), min_tip_wei)
    max_fee = HEADROOM * base + tip
    if cap_wei is not None:
        if base + tip > cap_wei:
            raise FeeCapExceeded(
                f"next base fee {base} + tip {tip} wei exceeds the fee cap {cap_wei} wei "
                f"(set by {cap_key}): wait for lower fees or raise {cap_key}",
                key=cap_key,
            )
        max_fee = min(max_fee, cap_wei)
    return Fees(max_fee_wei=Wei(max_fee), priority_fee_wei=Wei(tip))


def _ceil_mul(value: int, factor: Fraction) -> int:
    return -((-value * factor.numerator) // factor.denominator)


def percent_text(pct: Fraction) -> str:
    """12.5 for Fraction(25, 2): a percent as an operator reads it."""
    return f"{float(pct):g}"


def bump(
    fees: Fees,
    percent: float | int | str | Fraction,
    cap_wei: int | None,
    *,
    min_tip_wei: int = 1,
    cap_key: str = "gas.max_fee_gwei",
) -> Fees:
    """Raise BOTH tip and fee cap by `percent` (>= 12.5), rounding up. A zero tip becomes
    `min_tip_wei` (at least 1 wei): x1.125 of nothing is nothing, and nodes require both
    fields to rise.

    Raises FeeCapExceeded when the bumped fee cap would exceed `cap_wei`: a replacement capped
    below the bump would be rejected by the node as underpriced, so there is no partial bump.
    """
    pct = Fraction(str(percent)) if not isinstance(percent, Fraction) else percent
    if pct < MIN_BUMP_PERCENT:
        raise ValueError(f"bump percent ({percent}) must be >= 12.5")
    factor = 1 + pct / 100
    tip = max(_ceil_mul(fees.priority_fee_wei, factor), min_tip_wei, 1)
    max_fee = max(_ceil_mul(fees.max_fee_wei, factor), tip)
    if cap_wei is not None and max_fee > cap_wei:
        raise FeeCapExceeded(
            f"replacement needs max fee {max_fee} wei (+{percent_text(pct)}%) but the cap is "
            f"{cap_wei} wei (set by {cap_key}): stopped bumping",
            key=cap_key,
        )
    return Fees(max_fee_wei=Wei(max_fee), priority_fee_wei=Wei(min(tip, max_fee)))


def replacement_fees(
    last: Fees,
    fresh: Fees | None,
    percent: float | int | str,
    cap_wei: int | None,
    *,
    min_tip_wei: int = 1,
    cap_key: str = "gas.max_fee_gwei",
) -> Fees:
    """The next attempt: at least `bump(last)`, raised to the current market (`fresh`) within
    the cap."""
    bumped = bump(last, percent, cap_wei, min_tip_wei=min_tip_wei, cap_key=cap_key)
    if fresh is None:
        return bumped
    max_fee = max(bumped.max_fee_wei, min(fresh.max_fee_wei, cap_wei or fresh.max_fee_wei))
    tip = min(max(bumped.priority_fee_wei, fresh.priority_fee_wei), max_fee)
    return Fees(max_fee_wei=Wei(max_fee), priority_fee_wei=Wei(tip))


def ladder(start: Fees, percent: float | int | str, cap_wei: int, steps: int) -> list[Fees]:
    """`start` and up to `steps` bumps, stopping before the cap is exceeded."""
    out = [start]
    for _ in range(steps):
        try:
            out.append(bump(out[-1], percent, cap_wei))
        except FeeCapExceeded:
            break
    return out
