"""Trade costs in one currency (USD, E18 integers): gas, pool fee, price impact, tracking.

Every number that crosses into a `Decision` is an integer. The model:
- gas: (overhead + legs x gas units per leg) x gas price (wei) x ETH price;
- fee: the pool's fee tier (ppm) on the traded notional;
- impact: Uniswap v3 in-range swap against virtual reserves R = 2 x depth. A swap of q (USD)
  pays q^2 / (R + q) against the mid price (about q / (2 depth) as a fraction) and moves the
  pool's mid price by about q / depth. `depth_e18` is the "effective depth": the notional that
  moves the price by 100%, the convention of backtesting.md ($275-320M for USDC/WETH 0.05%).
- recovery between split clips: arbitrage pulls the pool back only to within one fee tier, so
  each clip after the first in a same-direction run starts from a price displaced adversely by
  min(previous move, fee tier) (`recovery="fee_tier"`); `recovery="fresh"` assumes a fresh pool.
- tracking: a mean-variance penalty in the same money, 0.5 x gamma x NAV x d' Sigma d per hour,
  where d is the weight deviation vector and Sigma the hourly return covariance: the
  certainty-equivalent loss an investor with risk aversion gamma puts on tracking variance.

The time of day and the gas outlook reach the policies through `CostInputs` (built per hour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.units import ONE_E18, PPM

FROZEN = {"frozen": True, "slots": True, "kw_only": True}

GAS_UNITS_PER_LEG = 105_000  # Uniswap v3 single-hop exactInputSingle, measured order of size
GAS_UNITS_OVERHEAD = 60_000  # per rebalance tx: vault guards, oracle reads, events
DEFAULT_TRACKING_GAMMA = 2.0  # risk aversion of the mean-variance tracking penalty


@dataclass(**FROZEN)
class PoolCost:
    """The pool a leg trades in against the cash asset."""

    fee_ppm: int  # 500 = 0.05%, 3000 = 0.3%
    depth_e18: int  # effective depth (USD E18): the pool mid moves ~ q / depth


# Uniswap v3 mainnet routes to USDC, by the token symbols the keeper's config uses: the study's
# calibration (keeper/backtest/defaults.py says where each number comes from). A network may
# override them in networks.yaml (`pool_costs`); an asset in neither gets UNKNOWN_POOL_COST.
MAINNET_POOL_COSTS: dict[str, PoolCost] = {
    "WETH": PoolCost(fee_ppm=500, depth_e18=276_000_000 * ONE_E18),
    "WBTC": PoolCost(fee_ppm=3500, depth_e18=165_000_000 * ONE_E18),
    "LINK": PoolCost(fee_ppm=3500, depth_e18=10_000_000 * ONE_E18),
}
UNKNOWN_POOL_COST = PoolCost(fee_ppm=3500, depth_e18=10_000_000 * ONE_E18)  # thin, two hops


@dataclass(**FROZEN)
class CostModel:
    """Static cost parameters of one vault; `pools` is per asset (None for the cash asset)."""

    pools: tuple[PoolCost | None, ...]
    gas_units_per_leg: int = GAS_UNITS_PER_LEG
    gas_units_overhead: int = GAS_UNITS_OVERHEAD
    tracking_gamma: float = DEFAULT_TRACKING_GAMMA
    recovery: str = "fee_tier"  # or "fresh"


@dataclass(**FROZEN)
class CostInputs:
    """What a policy knows about costs at one hour: the model plus today's gas and its outlook."""

    model: CostModel
    gas_price_wei: int  # now
    gas_typical_wei: int  # the level a trade at a random hour would pay (trailing mean)
    gas_min_ahead_wei: int  # lowest forecast gas price over the next day
    hours_to_min_ahead: int  # hours until that cheapest forecast hour
    eth_usd_e18: int
    residual_ppm: tuple[int, ...] = ()  # per asset: adverse pool displacement left by the last clip


@dataclass(**FROZEN)
class TradeCost:
    gas_e18: int
    fee_e18: int
    impact_e18: int

    @property
    def total_e18(self) -> int:
        return self.gas_e18 + self.fee_e18 + self.impact_e18


# ---------------------------------------------------------------- integer formulas


def gas_cost_e18(n_legs: int, gas_price_wei: int, eth_usd_e18: int, model: CostModel) -> int:
    """USD E18 cost of one rebalance tx with `n_legs` swaps; 0 when nothing trades."""
    if n_legs <= 0:
        return 0
    units = model.gas_units_overhead + n_legs * model.gas_units_per_leg
    return units * gas_price_wei * eth_usd_e18 // ONE_E18


def fee_cost_e18(notional_e18: int, fee_ppm: int) -> int:
    return abs(notional_e18) * fee_ppm // PPM


def impact_cost_e18(notional_e18: int, depth_e18: int, residual_ppm: int = 0) -> int:
    """Shortfall against the mid of an in-range v3 swap: q^2 / (2 depth + q), plus q x residual."""
    q = abs(notional_e18)
    if q == 0 or depth_e18 <= 0:
        return 0
    return q * q // (2 * depth_e18 + q) + q * residual_ppm // PPM


def price_move_ppm(notional_e18: int, depth_e18: int) -> int:
    """How far a swap of q moves the pool mid price, in ppm: (1 + q/R)^2 - 1 with R = 2 depth."""
    q, r = abs(notional_e18), 2 * depth_e18
    return ((r + q) ** 2 - r * r) * PPM // (r * r) if r else 0


def next_residual_ppm(notional_e18: int, depth_e18: int, fee_ppm: int, recovery: str) -> int:
    """Adverse displacement the next same-direction clip inherits: <= one fee tier, or 0 (fresh)."""
    if recovery == "fresh" or notional_e18 == 0:
        return 0
    return min(price_move_ppm(notional_e18, depth_e18), fee_ppm)


def trade_cost(notionals_e18: Sequence[int], costs: CostInputs,
               gas_price_wei: int | None = None) -> TradeCost:
    """Cost of one rebalance tx trading `notionals_e18` (signed, per asset; cash leg ignored)."""
    m = costs.model
    legs = fee = impact = 0
    for i, q in enumerate(notionals_e18):
        pool = m.pools[i]
        if pool is None or q == 0:
            continue
        legs += 1
        fee += fee_cost_e18(q, pool.fee_ppm)
        res = costs.residual_ppm[i] if costs.residual_ppm else 0
        impact += impact_cost_e18(q, pool.depth_e18, res)
    gp = costs.gas_price_wei if gas_price_wei is None else gas_price_wei
    return TradeCost(gas_e18=gas_cost_e18(legs, gp, costs.eth_usd_e18, m), fee_e18=fee,
                     impact_e18=impact)


# ---------------------------------------------------------------- float helpers (maths side)


def trade_cost_usd(notionals_usd: Sequence[float], costs: CostInputs, gas_price_wei: float,
                   residual: bool = True) -> float:
    """Float twin of `trade_cost` (total, USD) for optimisers; same formulas, no rounding."""
    m = costs.model
    legs, var = 0, 0.0
    for i, q in enumerate(notionals_usd):
        pool = m.pools[i]
        if pool is None or q == 0.0:
            continue
        legs += 1
        aq, depth = abs(q), pool.depth_e18 / ONE_E18
        res = costs.residual_ppm[i] / PPM if (residual and costs.residual_ppm) else 0.0
        var += aq * pool.fee_ppm / PPM + aq * aq / (2.0 * depth + aq) + aq * res
    units = m.gas_units_overhead + legs * m.gas_units_per_leg if legs else 0
    return var + units * gas_price_wei * costs.eth_usd_e18 / ONE_E18 / ONE_E18


def tracking_penalty_usd_per_h(nav_usd: float, dev: Sequence[float],
                               cov: Sequence[Sequence[float]], gamma: float) -> float:
    """0.5 gamma NAV d' Sigma d: the hourly money value of tracking variance."""
    # sum(dev[a] * dev[b] * cov[a][b] for a for b if dev[a] and dev[b]), unrolled for speed:
    # the same products added in the same order (from the same int 0), so bit for bit equal.
    nz = [(a, d) for a, d in enumerate(dev) if d]
    q: float = 0
    for a, da in nz:
        row = cov[a]
        for b, db in nz:
            q += da * db * row[b]
    return 0.5 * gamma * nav_usd * max(q, 0.0)


def depth_from_liquidity(liquidity: int, sqrt_price_x96: int, decimals0: int, decimals1: int,
                         token1_usd: float) -> float:
    """Effective depth (USD) of an in-range v3 pool: half the virtual reserve of token1 in USD.

    Virtual reserve y = L sqrt(P) (raw token1); a swap of q moves the mid ~ 2q / (2 depth).
    """
    y_raw = liquidity * sqrt_price_x96 / 2**96
    unit1: float = 10**decimals1  # an int at runtime; mypy sees 10**int as Any
    return 0.5 * y_raw / unit1 * token1_usd + 0.0 * decimals0
