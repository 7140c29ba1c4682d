"""Calendar rule: every `period_h` hours, trade back to target (legs under the minimum skipped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keeper.costs import CostInputs
from keeper.models import Decision, Forecast, VaultState
from keeper.policy.base import (
    ScreenView,
    cash_index,
    deviations,
    drop_small_legs,
    hold,
    nav_usd,
    reactive_collateral,
    rebalance,
    rule_benefit_usd,
)

HOUR_S = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class CalendarPolicy:
    period_h: int = 168
    min_trade_usd: float = 100.0
    name: ClassVar[str] = "calendar"
    uses_forecast: ClassVar[bool] = False

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision:
        coll = reactive_collateral(state, self.name)
        if coll is not None:
            return coll
        due_ts = state.last_rebalance_ts + self.period_h * HOUR_S
        if forecast.now_ts < due_ts:
            return hold(f"calendar: next rebalance in {(due_ts - forecast.now_ts) // HOUR_S} h")
        dev = deviations(state)
        cash = cash_index(state)
        new = drop_small_legs(dev, [0.0] * len(dev), cash, nav_usd(state), self.min_trade_usd)
        if new == dev:
            return hold("calendar: due, but every leg is under the minimum trade")
        return rebalance(state, new, f"calendar: {self.period_h} h elapsed, back to target",
                         benefit_usd=rule_benefit_usd(state, new, costs))

    def screen(self, view: ScreenView) -> NDArray[np.bool_]:
        """`decide()` holds until the period has elapsed since the last rebalance."""
        held: NDArray[np.bool_] = view.rows(view.now_ts) < (view.last_rebalance_ts
                                                            + self.period_h * HOUR_S)
        return held
