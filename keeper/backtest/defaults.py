"""The default vault and cost model of the study, with where each number comes from.

Depths (effective depth D: a swap of q moves the pool mid by ~q/D, pays ~q/(2D)):
- ETH via USDC/WETH 0.05%: D = $276M, the median over 2024-01-05 of `uniswap_v3/usdc_weth_005_...`
  (virtual USDC reserve / 2; the tick-move regression on the same day gives ~$334M).
- BTC via WBTC/WETH 0.3% then WETH/USDC 0.05%: fee 3,500 ppm; the WBTC/WETH pool's median depth
  over 2021-05 -> 2021-12 (training years only) is ~$412M, in series with $276M gives ~$165M.
- LINK via LINK/WETH 0.3% then WETH/USDC: fee 3,500 ppm; no pool data in ../data, so D = $10M is
  an ASSUMPTION (a ~$20-40M TVL full-range pool), the weakest number here.
Pools are held at these depths for the whole 2019-2023 replay (v3 launched May 2021).
Gas: the vault's measured gas table (keeper/data/vault_gas.json), the one the keeper plans with.
"""

from __future__ import annotations

from keeper.backtest.engine import VaultSpec
from keeper.costs import MAINNET_POOL_COSTS, UNKNOWN_POOL_COST, CostModel
from keeper.units import ONE_E18

SYMBOLS = ("ETH", "BTC", "LINK", "USDC")
TARGETS_BPS = (4000, 3000, 1000, 2000)
_TOKEN = {"ETH": "WETH", "BTC": "WBTC", "LINK": "LINK"}  # price series -> the token traded
# the numbers above live in keeper.costs.MAINNET_POOL_COSTS, shared with the live keeper
DEPTH_USD = {s: MAINNET_POOL_COSTS[t].depth_e18 // ONE_E18 for s, t in _TOKEN.items()}
FEE_PPM = {s: MAINNET_POOL_COSTS[t].fee_ppm for s, t in _TOKEN.items()}


def cost_model(symbols: tuple[str, ...] = SYMBOLS, *, recovery: str = "fee_tier",
               gamma: float | None = None) -> CostModel:
    """The study's cost model: mainnet pools per asset and the vault's measured gas table."""
    pools = tuple(None if s == "USDC" else MAINNET_POOL_COSTS.get(_TOKEN.get(s, s),
                                                                  UNKNOWN_POOL_COST)
                  for s in symbols)
    if gamma is None:
        return CostModel(pools=pools, recovery=recovery)
    return CostModel(pools=pools, recovery=recovery, tracking_gamma=gamma)


def vault_spec(nav_usd: float = 10_000_000.0, *, symbols: tuple[str, ...] = SYMBOLS,
               targets_bps: tuple[int, ...] = TARGETS_BPS, model: CostModel | None = None,
               outer_band_bps: int = 500) -> VaultSpec:
    return VaultSpec(symbols=symbols, targets_bps=targets_bps,
                     cost_model=model or cost_model(symbols), nav_usd=nav_usd,
                     outer_band_bps=outer_band_bps)
