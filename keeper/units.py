"""Unit types and the only place where 10**18, 10_000 and friends appear.

Money math is integer: wei, raw token units (each token's own decimals), bps, ppm.
Floats are for forecasting only and never cross into plan or send.
"""

from __future__ import annotations

from typing import NewType

Wei = NewType("Wei", int)
Raw = NewType("Raw", int)  # a token amount in the token's own decimals
Bps = NewType("Bps", int)  # basis points, 1/10_000
Ppm = NewType("Ppm", int)  # parts per million (Uniswap fee tiers: 500, 3000)
E18 = NewType("E18", int)  # 18-decimal fixed point (USD values, prices)
E8 = NewType("E8", int)  # 8-decimal fixed point (Chainlink USD feeds, Aave base currency)
X96 = NewType("X96", int)  # Uniswap Q64.96

BPS: int = 10_000
PPM: int = 1_000_000
ONE_E18: int = 10**18
ONE_E8: int = 10**8
WEI_PER_GWEI: int = 10**9
Q96: int = 2**96


def scale(amount: int, from_decimals: int, to_decimals: int) -> int:
    """Rescale an integer amount between decimal bases, rounding down."""
    if from_decimals == to_decimals:
        return amount
    if to_decimals > from_decimals:
        up: int = 10 ** (to_decimals - from_decimals)  # exponent > 0: an int (mypy sees Any)
        return amount * up
    down: int = 10 ** (from_decimals - to_decimals)  # exponent > 0: an int (mypy sees Any)
    return amount // down


def to_raw(amount: float | str, decimals: int) -> Raw:
    """Human amount (e.g. "1.5") to raw units, exactly for strings; for setup and CLI input only."""
    from decimal import Decimal

    return Raw(int(Decimal(str(amount)) * (Decimal(10) ** decimals)))


def gwei(n: float | int) -> Wei:
    """Gwei (config and CLI only) to wei."""
    from decimal import Decimal

    return Wei(int(Decimal(str(n)) * WEI_PER_GWEI))


def value_e18(amount_raw: int, decimals: int, price: int, price_decimals: int) -> E18:
    """USD value (E18) of `amount_raw` of a token at `price` (feed decimals), rounded down."""
    return E18(amount_raw * price * ONE_E18 // (10**decimals * 10**price_decimals))


def bps_of(part: int, whole: int) -> Bps:
    """part/whole in bps, rounding down; 0 when whole is 0."""
    return Bps(part * BPS // whole) if whole else Bps(0)
