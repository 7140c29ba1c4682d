"""Threshold rule: when a weight leaves target +- width, trade everything back to target."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from keeper.costs import CostInputs
from keeper.models import Decision, Forecast, VaultState
from keeper.policy.band import BandPolicy
from keeper.policy.base import ScreenView, deviation_screen


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdPolicy:
    width_bps: int = 500
    min_trade_usd: float = 100.0
    name: ClassVar[str] = "threshold"
    uses_forecast: ClassVar[bool] = False

    def decide(self, state: VaultState, forecast: Forecast, costs: CostInputs) -> Decision:
        inner = BandPolicy(width_bps=self.width_bps, ret_frac=1.0,
                           min_trade_usd=self.min_trade_usd)
        d = inner.decide(state, forecast, costs)
        # every field but the wording is the band rule's: urgency, the collateral target and the
        # benefit go through unchanged
        return replace(d, reason=d.reason.replace("band", "threshold", 1))

    def screen(self, view: ScreenView) -> NDArray[np.bool_]:
        return deviation_screen(view, self.width_bps)
