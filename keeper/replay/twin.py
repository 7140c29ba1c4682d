"""The backtest side of a replay: the backtester on the same window, with a vault spec that mirrors
the live vault (NAV at the start, targets, bands, trade and slippage limits, and the live keeper's
own cost model), and the same vol model fitted on the same history rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keeper.backtest import engine, market
from keeper.backtest.engine import RunResult, VaultSpec
from keeper.costs import CostModel, tracking_penalty_usd_per_h
from keeper.models import VaultState
from keeper.policy import make_policy
from keeper.replay.window import Window, series_of
from keeper.units import BPS, ONE_E18

DEFAULT_HORIZON_H = 24


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TwinRun:
    """One policy's backtest over the window, with the weights before each hour's trade."""

    name: str
    params: dict[str, Any]
    res: RunResult
    spec: VaultSpec
    pre_weights: NDArray[np.float64]  # (hours, assets): what the policy saw each hour
    cov: NDArray[np.float64]  # (hours, assets, assets): the hourly covariance the penalty uses
    metrics: dict[str, Any]

    def traded(self, k: int) -> bool:
        return bool(np.any(self.res.trade_hours == k))

    def cost_usd(self) -> dict[str, float]:
        r = self.res
        gas, fee, imp = (float(x.sum()) for x in (r.gas_usd, r.fee_usd, r.impact_usd))
        return {"gas": gas, "fees": fee, "impact": imp, "total": gas + fee + imp,
                "tracking_penalty": float(r.penalty_usd.sum())}


def mirror_spec(state: VaultState, cost_model: CostModel) -> VaultSpec:
    """The backtester's vault, as the live one stands at the window's first hour."""
    first = state.assets[0]
    return VaultSpec(
        symbols=series_of(tuple(a.symbol for a in state.assets)),
        targets_bps=tuple(int(a.target_bps) for a in state.assets),
        cost_model=cost_model,
        outer_band_bps=int(first.outer_band_bps),
        inner_band_bps=int(first.inner_band_bps),
        nav_usd=state.nav_e18 / ONE_E18,
        max_trade_usd=state.limits.max_trade_e18 / ONE_E18,
        max_slippage_bps=int(state.limits.max_slippage_bps),
        hold_nav=False,  # the live vault's NAV moves with prices; so does this one
    )


def run_twin(win: Window, spec: VaultSpec, name: str, params: dict[str, Any], vol_model: str
             ) -> TwinRun:
    """The backtester on hours [i0, i0 + hours) of the window, fitted on the rows before."""
    policy = make_policy(name, params)
    horizon = int(getattr(policy, "horizon_h", DEFAULT_HORIZON_H))
    mkt = market.prepare(win.prices, spec.symbols, fit_end=win.i0, gas=win.gas,
                         horizon_h=horizon, model=vol_model)
    i1 = win.i0 + win.hours - 1
    res = engine.run(mkt, spec, policy, win.i0, i1, params, keep_reasons=True)
    return TwinRun(name=name, params=params, res=res, spec=spec,
                   pre_weights=_pre_weights(res, spec, mkt, win.i0),
                   cov=mkt.cov[win.i0: i1 + 1], metrics=engine.metrics(res, spec))


def _pre_weights(res: RunResult, spec: VaultSpec, mkt: market.Market, i0: int
                 ) -> NDArray[np.float64]:
    """Each hour's weights before its trade: the last hour's post-trade weights moved by the
    hour's prices (the first hour starts at the targets)."""
    rows = res.weights.shape[0]
    px: NDArray[np.float64] = np.asarray([mkt.px_rows[i0 + k] for k in range(rows)], dtype=float)
    out = np.empty_like(res.weights)
    out[0] = np.asarray(spec.targets_bps) / BPS
    if res.weights.shape[0] > 1:
        moved = res.weights[:-1] * px[1:] / px[:-1]
        out[1:] = moved / moved.sum(axis=1, keepdims=True)
    return out


def penalty_usd(twin: TwinRun, weights_bps: list[tuple[int, ...]], navs_usd: list[float],
                gamma: float) -> float:
    """The tracking penalty of another path of weights (the live vault's, after each hour's
    trade) at the twin's covariance: the same money as the backtester's penalty."""
    targets = twin.spec.targets_bps
    return sum(tracking_penalty_usd_per_h(nav, [(w - t) / BPS for w, t in zip(ws, targets,
                                                                              strict=True)],
                                          twin.cov[k].tolist(), gamma)
               for k, (ws, nav) in enumerate(zip(weights_bps, navs_usd, strict=True)))
