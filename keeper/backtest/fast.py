"""The replay's fast path: between trades the holdings are constant, so the marks of every hour
ahead (weights, NAV, the state's deviations in bps) follow from the prices alone and are
computed for a span of hours at once with numpy. The policy's own screen (`Policy.screen`, the
first test its `decide()` makes, on the same numbers) then says which of those hours provably
hold, and the replay skips them without building a state or calling `decide()`.

Exactness: every operation here is the one the hour-by-hour replay makes in Python, element by
element and in the same order (products, left-to-right sums over assets, division, round half
to even), and IEEE arithmetic gives the same bits either way. tests/unit/test_backtest_fast.py
checks the two paths agree on every metric and every trade hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from keeper.policy.base import Policy, ScreenView
from keeper.units import BPS, ONE_E18

if TYPE_CHECKING:
    from keeper.backtest.engine import VaultSpec
    from keeper.backtest.market import Market


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Marks:
    """Hours [a, b) at fixed holdings: post-hour weights and NAV as recorded, and the state's
    deviations (bps)."""

    weights: NDArray[np.float64]
    nav: NDArray[np.float64]
    dev_bps: NDArray[np.int64]


def _row_sum(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum() over each row, left to right, as Python's sum of a list does (not pairwise)."""
    out: NDArray[np.float64] = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        out = out + x[:, j]
    return out


def marks(mkt: Market, spec: VaultSpec, units: list[float], a: int, b: int) -> Marks:
    """Rows [a, b) of the market at these holdings, NAV held at nominal (the fast path runs
    only then: the state's NAV is the nominal one, the same every hour)."""
    vals = mkt.px[a:b] * np.asarray(units)
    nav = _row_sum(vals)
    vals = vals * spec.nav_usd / nav[:, None]
    nav = np.full(b - a, spec.nav_usd)
    weights = vals / nav[:, None]
    state_nav = _row_sum(vals)  # build_state's weights are shares of the values' sum
    wbps = np.round(vals / state_nav[:, None] * BPS).astype(np.int64)
    dev = wbps - np.asarray(spec.targets_bps, dtype=np.int64)
    return Marks(weights=weights, nav=nav, dev_bps=dev)


def screen_context(mkt: Market, spec: VaultSpec, i0: int, i1: int) -> ScreenView:
    """The run's per-hour inputs, once: spans slice it (`ScreenView.at`), and policies keep
    what they derive from it in its memo."""
    sl = slice(i0, i1 + 1)
    return ScreenView(dev_bps=np.zeros((0, len(spec.symbols)), dtype=np.int64), span=(0, 0),
                      now_ts=mkt.ts[sl], vols=mkt.vol[sl], long_run_vols=mkt.vol_lr,
                      corr=mkt.corr[sl], gas_now=mkt.gas_wei_f[sl],
                      gas_typical=mkt.typical_wei_f[sl], eth_e18=mkt.eth_e18_f[sl],
                      nav=int(spec.nav_usd * ONE_E18) / ONE_E18,  # nav_usd(state), exactly
                      targets_bps=spec.targets_bps,
                      outer_bps=tuple(spec.outer_band_bps for _ in spec.symbols),
                      last_rebalance_ts=0, model=spec.cost_model, memo={})


def held_hours(run: ScreenView, mkt: Market, spec: VaultSpec, policy: Policy, units: list[float],
               i0: int, span: tuple[int, int], last_ts: int) -> tuple[int, Marks]:
    """How many hours of `span` (offsets into the run, which starts at market row i0) the
    policy provably holds from its first, and their marks."""
    a, b = span
    m = marks(mkt, spec, units, i0 + a, i0 + b)
    held = policy.screen(run.at(span, m.dev_bps, last_ts))
    n = int(np.argmin(held)) if not held.all() else b - a
    return n, m
