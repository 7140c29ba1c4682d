"""Band rule (Leland / Davis-Norman): when a weight leaves target +- width, trade back to the
band's edge (`ret_frac` 0), an interior point (0 < ret_frac < 1) or the target (1).

`split=True` lets the trade go out in clips sized by the cost model ("band+split"): execution,
the same lever the preventative policy has, so splitting is credited to execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keeper.costs import CostInputs
from keeper.models import Decision, Forecast, VaultState
from keeper.policy.base import (
    ScreenView,
    best_clips,
    cash_index,
    deviation_screen,
    deviations,
    drop_small_legs,
    hold,
    nav_usd,
    project_to_band,
    reactive_collateral,
    rebalance,
    rule_benefit_usd,
    trade_notionals_usd,
)
from keeper.units import BPS


@dataclass(frozen=True, slots=True, kw_only=True)
class BandPolicy:
    width_bps: int = 300
    ret_frac: float = 0.0
    min_trade_usd: float = 100.0
    split: bool = False
    name: ClassVar[str] = "band"
    uses_forecast: ClassVar[bool] = False

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision:
        coll = reactive_collateral(state, self.name)
        if coll is not None:
            return coll
        worst = state.max_abs_deviation_bps
        if worst <= self.width_bps:
            return hold(f"{self.name}: max deviation {worst} bps within {self.width_bps} bps")
        dev = deviations(state)
        cash, nav = cash_index(state), nav_usd(state)
        edge = self.width_bps / BPS * (1.0 - self.ret_frac)
        new = drop_small_legs(dev, project_to_band(dev, edge, cash), cash, nav,
                              self.min_trade_usd)
        if new == dev:
            return hold(f"{self.name}: outside band but every leg is under the minimum trade")
        clips = best_clips(trade_notionals_usd(dev, new, nav, cash), costs, state) if self.split \
            else 1
        return rebalance(state, new, f"{self.name}: deviation {worst} bps > {self.width_bps} bps, "
                         f"trade to {self.ret_frac:.0%} into the band", clips=clips,
                         benefit_usd=rule_benefit_usd(state, new, costs, clips))

    def screen(self, view: ScreenView) -> NDArray[np.bool_]:
        """`decide()` holds while every deviation is within the width (no collateral here)."""
        return deviation_screen(view, self.width_bps)
