"""Trade costs in one currency (USD, E18 integers): gas, pool fee, price impact, tracking.

Every number that crosses into a `Decision` is an integer. The model:
- gas: the vault's measured gas table (fixed + per leg + per extra hop, keeper/data/vault_gas.json)
  x gas price (wei) x ETH price;
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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from keeper.errors import ConfigError
from keeper.models import CASH_SYMBOLS, Decision, GasOutlook, TradeCost, VaultState
from keeper.units import BPS, ONE_E18, PPM

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
GAS_TABLE = Path(__file__).resolve().parent / "data" / "vault_gas.json"
DEFAULT_TRACKING_GAMMA = 2.0  # risk aversion of the mean-variance tracking penalty
MAX_REQUIRED_COST_BPS = 200  # even a required trade holds (and alerts) above this cost of NAV


@dataclass(**FROZEN)
class GasTable:
    """The vault's measured gas (keeper/data/vault_gas.json, written by the vault's gas
    benchmark): one table for the planner's budget, the policies and the backtester."""

    rebalance_fixed: int  # a rebalance call without its swaps: guards, oracle reads, NAV, events
    rebalance_per_leg: int  # each single-hop swap leg
    rebalance_per_extra_hop: int  # each further hop of a multi-hop leg
    twap_guard_fixed: int  # the optional oracle-vs-TWAP check on a one-leg rebalance
    ripcord: int
    adjust_collateral: int
    keeper_view: int
    source: str

    def rebalance_units(self, hops_per_leg: Sequence[int]) -> int:
        """Gas of one rebalance call with legs of these hop counts; 0 when nothing trades."""
        if not hops_per_leg:
            return 0
        extra = sum(max(h - 1, 0) for h in hops_per_leg)
        return (self.rebalance_fixed + len(hops_per_leg) * self.rebalance_per_leg
                + extra * self.rebalance_per_extra_hop)


def load_gas_table(path: Path = GAS_TABLE) -> GasTable:
    """The shipped gas table; a missing or malformed file is a ConfigError naming it."""
    try:
        data = json.loads(path.read_text())
        return GasTable(**{k: data[k] for k in GasTable.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"gas table {path} is unreadable ({err}): reinstall vault-keeper or "
                          "regenerate it with `make bench`") from err


VAULT_GAS = load_gas_table()


@dataclass(**FROZEN)
class PoolCost:
    """The pool a leg trades in against the cash asset."""

    fee_ppm: int  # 500 = 0.05%, 3000 = 0.3%; a two-hop route sums its tiers
    depth_e18: int  # effective depth (USD E18): the pool mid moves ~ q / depth
    hops: int = 1  # swaps on the route to the cash asset (gas: one extra hop each)


# Uniswap v3 mainnet routes to USDC, by the token symbols the keeper's config uses: the study's
# calibration (keeper/backtest/defaults.py says where each number comes from). A network may
# override them in networks.yaml (`pool_costs`); an asset in neither gets UNKNOWN_POOL_COST.
MAINNET_POOL_COSTS: dict[str, PoolCost] = {
    "WETH": PoolCost(fee_ppm=500, depth_e18=276_000_000 * ONE_E18),
    "WBTC": PoolCost(fee_ppm=3500, depth_e18=165_000_000 * ONE_E18, hops=2),
    "LINK": PoolCost(fee_ppm=3500, depth_e18=10_000_000 * ONE_E18, hops=2),
}
UNKNOWN_POOL_COST = PoolCost(fee_ppm=3500, depth_e18=10_000_000 * ONE_E18, hops=2)  # thin


@dataclass(**FROZEN)
class CostModel:
    """Static cost parameters of one vault; `pools` is per asset (None for the cash asset)."""

    pools: tuple[PoolCost | None, ...]
    gas: GasTable = VAULT_GAS
    tracking_gamma: float = DEFAULT_TRACKING_GAMMA
    recovery: str = "fee_tier"  # or "fresh"


def cost_model_for(symbols: Sequence[str], overrides: Mapping[str, PoolCost] | None = None,
                   ) -> CostModel:
    """A vault's cost model: per asset, the network's pool (`overrides`), else mainnet's, else
    UNKNOWN_POOL_COST; the cash asset trades against nothing."""
    over = overrides or {}
    pools = tuple(None if s.upper() in CASH_SYMBOLS else
                  over.get(s, MAINNET_POOL_COSTS.get(s, UNKNOWN_POOL_COST)) for s in symbols)
    return CostModel(pools=pools)


def eth_usd_e18_of(state: VaultState) -> int:
    """The ETH price gas is paid at: the basket's WETH feed, else a conservative $3,000."""
    for a in state.assets:
        if a.symbol in ("WETH", "ETH") and a.feed.answer > 0:
            return int(a.feed.answer * ONE_E18 // 10**a.feed.decimals)
    return 3000 * ONE_E18


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


def cost_inputs(model: CostModel, *, gas_price_wei: int, outlook: GasOutlook | None,
                eth_usd_e18: int, residual_ppm: tuple[int, ...] = ()) -> CostInputs:
    """A policy's cost view at one hour, live and in the backtest: the price a trade would pay
    now and what the gas history says (`keeper.forecast.gas`). Without gas history the outlook
    is flat at today's price, so no policy waits for cheaper gas it cannot foresee."""
    if outlook is None:
        outlook = GasOutlook(typical_wei=gas_price_wei, min_ahead_wei=gas_price_wei,
                             hours_to_min_ahead=0)
    return CostInputs(model=model, gas_price_wei=gas_price_wei,
                      gas_typical_wei=outlook.typical_wei,
                      gas_min_ahead_wei=outlook.min_ahead_wei,
                      hours_to_min_ahead=outlook.hours_to_min_ahead, eth_usd_e18=eth_usd_e18,
                      residual_ppm=residual_ppm)


# ---------------------------------------------------------------- integer formulas


def gas_cost_e18(hops_per_leg: Sequence[int], gas_price_wei: int, eth_usd_e18: int,
                 model: CostModel) -> int:
    """USD E18 cost of one rebalance tx with legs of these hop counts; 0 when nothing trades."""
    return model.gas.rebalance_units(hops_per_leg) * gas_price_wei * eth_usd_e18 // ONE_E18


def traded_hops(model: CostModel, traded: Sequence[bool]) -> list[int]:
    """The hop count of each asset's route that trades (the cash asset never has a leg)."""
    return [p.hops for p, t in zip(model.pools, traded, strict=True) if p is not None and t]


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
    fee = impact = 0
    for i, q in enumerate(notionals_e18):
        pool = m.pools[i]
        if pool is None or q == 0:
            continue
        fee += fee_cost_e18(q, pool.fee_ppm)
        res = costs.residual_ppm[i] if costs.residual_ppm else 0
        impact += impact_cost_e18(q, pool.depth_e18, res)
    gp = costs.gas_price_wei if gas_price_wei is None else gas_price_wei
    hops = traded_hops(m, [q != 0 for q in notionals_e18])
    return TradeCost(gas_e18=gas_cost_e18(hops, gp, costs.eth_usd_e18, m), fee_e18=fee,
                     impact_e18=impact)


def required_or_benefit_e18(state: VaultState, decision: Decision) -> int | None:
    """None when acting is required (a weight outside its outer band, collateral in danger);
    otherwise the benefit the policy put on its decision, which the trade must not exceed."""
    if decision.urgent or any(a.outside_outer for a in state.assets):
        return None
    return decision.benefit_e18


def cost_gate(cost: TradeCost, benefit_e18: int | None, nav_e18: int,
              max_required_cost_bps: int) -> str:
    """The one cost rule of the plan stage, live and in the backtest: empty when the trade may
    go ahead, else why not. A required trade (`benefit_e18` None) may cost up to
    `max_required_cost_bps` of NAV; any other must cost no more than its expected benefit."""
    usd = cost.total_e18 / ONE_E18
    if benefit_e18 is None:
        if cost.total_e18 > nav_e18 * max_required_cost_bps // BPS:
            return (f"required trade costs {usd:.2f} USD, over {max_required_cost_bps} bps of "
                    "NAV: alert, not sending")
        return ""
    if cost.total_e18 > benefit_e18:
        return f"cost {usd:.2f} USD exceeds the expected benefit {benefit_e18 / ONE_E18:.2f} USD"
    return ""


# ---------------------------------------------------------------- float helpers (maths side)


def trade_cost_usd(notionals_usd: Sequence[float], costs: CostInputs, gas_price_wei: float,
                   residual: bool = True) -> float:
    """Float twin of `trade_cost` (total, USD) for optimisers; same formulas, no rounding."""
    m = costs.model
    var = 0.0
    hops: list[int] = []
    for i, q in enumerate(notionals_usd):
        pool = m.pools[i]
        if pool is None or q == 0.0:
            continue
        hops.append(pool.hops)
        aq, depth = abs(q), pool.depth_e18 / ONE_E18
        res = costs.residual_ppm[i] / PPM if (residual and costs.residual_ppm) else 0.0
        var += aq * pool.fee_ppm / PPM + aq * aq / (2.0 * depth + aq) + aq * res
    units = m.gas.rebalance_units(hops)
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
