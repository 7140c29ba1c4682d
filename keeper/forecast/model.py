"""The volatility model the live keeper and the backtester share: fit once on a window of hourly
returns, then run the fitted filters over any span of hours.

`fit_vols` fits one model per asset (EWMA or GARCH(1,1), chosen in config; cash and any
constant-price asset get none) and the decay of the EWMA correlation; `vol_paths` runs the
fitted filters over returns and gives, for every hour t, what a forecast made at t may know:
the average hourly vol expected over the horizon, the long-run vol and the EWMA covariance.
Both the backtester (over a whole price file, fitted on its training rows) and the live keeper
(over its oracle history, fitted on that history and refitted every few days) call these two
functions, so one hour of the same history gives one forecast in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from keeper.errors import ForecastError
from keeper.forecast import vol
from keeper.models import DEFAULT_VOL_MODEL, VOL_MODELS


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class VolFit:
    """A fitted model per asset (None: constant price, vol 0) and the correlation's decay."""

    model: str
    params: tuple[vol.EwmaParams | vol.GarchParams | None, ...]
    var0: tuple[float, ...]  # each asset's sample variance over the fit rows: the filters' seed
    corr_lam: float
    cov0: NDArray[np.float64]  # sample covariance over the fit rows: the covariance filter's seed
    fit_rows: int

    @property
    def note(self) -> str:
        parts = []
        for i, p in enumerate(self.params):
            if isinstance(p, vol.GarchParams):
                parts.append(f"{i}: garch a={p.alpha:.3f} b={p.beta:.3f}")
            elif isinstance(p, vol.EwmaParams):
                parts.append(f"{i}: ewma lam={p.lam:.4f}")
        return "; ".join(parts) + f"; corr ewma lam={self.corr_lam:.4f} ({self.fit_rows} rows)"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class VolPaths:
    """Per hour: the average hourly vol over the horizon, and the hourly covariance."""

    vol: NDArray[np.float64]  # (T, N)
    long_run: tuple[float, ...]  # (N,)
    cov: NDArray[np.float64]  # (T, N, N)


def check_model(model: str) -> str:
    if model not in VOL_MODELS:
        raise ForecastError(f"unknown vol model '{model}'; choose one of {list(VOL_MODELS)}")
    return model


def fit_vols(r: NDArray[np.float64], model: str = DEFAULT_VOL_MODEL) -> VolFit:
    """Fit `model` on hourly log returns `r` (T, N) (the rows to learn from, first row 0)."""
    check_model(model)
    fit = r[1:]
    params: list[vol.EwmaParams | vol.GarchParams | None] = []
    var0: list[float] = []
    for j in range(r.shape[1]):
        v = float(np.var(fit[:, j]))
        var0.append(v)
        if v == 0.0:
            params.append(None)
        elif model == "ewma":
            params.append(vol.fit_ewma(fit[:, j]))
        else:
            params.append(vol.fit_garch(fit[:, j]))
    risky = [j for j, p in enumerate(params) if p is not None]
    if not risky:
        raise ForecastError("every asset has a constant price: nothing to model")
    corr_lam = vol.fit_ewma(fit[:, risky[0]]).lam
    return VolFit(model=model, params=tuple(params), var0=tuple(var0), corr_lam=corr_lam,
                  cov0=np.atleast_2d(np.cov(fit.T)), fit_rows=int(fit.shape[0]))


def vol_paths(r: NDArray[np.float64], fit: VolFit, horizon_h: float) -> VolPaths:
    """Run the fitted filters over returns `r` (T, N): row t uses returns up to t only."""
    t_n, n = r.shape
    vols = np.zeros((t_n, n))
    long_run = [0.0] * n
    h = max(1, round(horizon_h))
    for j, p in enumerate(fit.params):
        if isinstance(p, vol.EwmaParams):
            vols[:, j] = np.sqrt(vol.ewma_var(r[:, j], p.lam, fit.var0[j]))
            long_run[j] = math.sqrt(fit.var0[j])
        elif isinstance(p, vol.GarchParams):
            v_next = vol.garch_var(r[:, j], p, fit.var0[j])
            vols[:, j] = np.sqrt(vol.garch_horizon_var(v_next, p, h) / h)
            long_run[j] = math.sqrt(p.long_run_var)
    cov = vol.ewma_cov(r, fit.corr_lam, fit.cov0)
    return VolPaths(vol=vols, long_run=tuple(long_run), cov=cov)


def portfolio_vol(vols: tuple[float, ...] | list[float], corr: NDArray[np.float64],
                  weights: list[float]) -> float:
    """Hourly vol of a basket held at `weights` (normalised to sum 1 over the given assets)."""
    total = sum(weights)
    if total <= 0.0:
        return 0.0
    w = np.asarray(weights, dtype=float) / total
    s = np.asarray(vols, dtype=float)
    cov = corr * np.outer(s, s)
    return float(math.sqrt(max(float(w @ cov @ w), 0.0)))
