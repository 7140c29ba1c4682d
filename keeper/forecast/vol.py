"""Volatility models fitted by maximum likelihood: EWMA (RiskMetrics) and GARCH(1,1).

Returns are hourly log returns. Every filter is causal: the variance for hour t+1 uses
returns up to and including hour t, so a forecast made at t never sees t+1.
Drift-free by default; `mean_return_per_h` lets a caller add drift (off unless asked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from keeper.errors import ForecastError

# scipy is imported where a fit or a filter runs: a keeper command that fits nothing (no 240 h of
# history yet) starts without it, about half the start-up time

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
MIN_FIT_OBS = 200  # below this an MLE of three parameters is noise


@dataclass(**FROZEN)
class EwmaParams:
    lam: float  # decay per hour
    var0: float  # starting variance (sample variance of the fit window)


@dataclass(**FROZEN)
class GarchParams:
    omega: float
    alpha: float
    beta: float

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def long_run_var(self) -> float:
        return self.omega / (1.0 - self.persistence)


def log_returns(prices: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hourly log returns along axis 0; the first row is 0 (no return before the first price)."""
    r = np.zeros_like(prices, dtype=float)
    r[1:] = np.diff(np.log(prices), axis=0)
    return np.nan_to_num(r, nan=0.0)


def _check_fit_input(r: NDArray[np.float64]) -> NDArray[np.float64]:
    r = np.asarray(r, dtype=float)
    if r.ndim != 1 or r.size < MIN_FIT_OBS:
        raise ForecastError(f"need >= {MIN_FIT_OBS} returns to fit a volatility model, "
                            f"got {r.size}")
    if not np.all(np.isfinite(r)):
        raise ForecastError("returns contain NaN or inf: clean the price history first")
    if float(np.var(r)) <= 0.0:
        raise ForecastError("returns have zero variance: a constant price cannot be modelled")
    return r


# ---------------------------------------------------------------- the first-order filter

IIR_BLOCK = 64


def iir1(x: NDArray[np.float64], b0: float, a: float, zi: NDArray[np.float64] | float
         ) -> NDArray[np.float64]:
    """y[n] = b0 x[n] + a y[n-1] along axis 0, with y[0] = b0 x[0] + zi: what
    `scipy.signal.lfilter([b0], [1, -a], x, axis=0, zi=zi)[0]` computes, to rounding (checked
    in tests/unit/test_forecast.py), without importing scipy.signal (about half a second of a
    backtest's start-up). Blocks of IIR_BLOCK rows are filtered at once, from a zero state, as
    one product with a lower-triangular matrix; the block boundaries' states follow from a
    second, small triangular product (|a| <= 1 here, so the powers of a stay bounded)."""
    x = np.asarray(x, dtype=float)
    t_n = x.shape[0]
    flat = x.reshape(t_n, -1)
    m = flat.shape[1]
    n_b = -(-t_n // IIR_BLOCK)
    padded = np.zeros((n_b * IIR_BLOCK, m))
    padded[:t_n] = flat
    inner, decay = _iir_block(float(b0), float(a))
    cols = padded.reshape(n_b, IIR_BLOCK, m).transpose(1, 0, 2).reshape(IIR_BLOCK, n_b * m)
    zs = (inner @ cols).reshape(IIR_BLOCK, n_b, m).transpose(1, 0, 2)  # (n_b, block, m)
    c0 = np.broadcast_to(np.asarray(zi, dtype=float).reshape(-1), (m,))
    outer, start = _iir_carry(float(a), n_b)
    carry = outer @ (a * zs[:, -1, :]) + start[:, None] * c0[None, :]  # state entering block b
    out = zs + decay[None, :, None] * carry[:, None, :]
    y: NDArray[np.float64] = out.reshape(n_b * IIR_BLOCK, m)[:t_n].reshape(x.shape)
    return y


@lru_cache(maxsize=64)
def _iir_block(b0: float, a: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Within a block: y = inner @ x from a zero state, plus decay[k] x the entering state."""
    k = np.arange(IIR_BLOCK)
    lag = k[:, None] - k[None, :]
    inner = np.where(lag >= 0, b0 * np.power(a, np.maximum(lag, 0)), 0.0)
    return inner, np.power(a, k)


@lru_cache(maxsize=64)
def _iir_carry(a: float, n_b: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Across blocks: the state entering block b is sum_{j<b} A^(b-1-j) e_j + A^b zi, where
    A = a^IIR_BLOCK and e_j = a y_j[last] is block j's zero-state end carried one step."""
    a_block = a**IIR_BLOCK
    b = np.arange(n_b)
    lag = b[:, None] - b[None, :] - 1
    outer = np.where(lag >= 0, np.power(a_block, np.maximum(lag, 0)), 0.0)
    return outer, np.power(a_block, b)


# ---------------------------------------------------------------- EWMA


def ewma_var(r: NDArray[np.float64], lam: float, var0: float) -> NDArray[np.float64]:
    """Variance forecast for hour t+1 made at hour t: v[t] = lam*v[t-1] + (1-lam)*r[t]^2.

    Works along axis 0 for 1-D or 2-D `r`. Uses an IIR filter, so it is vectorised.
    """
    x = (1.0 - lam) * np.asarray(r, dtype=float) ** 2
    return iir1(x, 1.0, lam, lam * var0)


def _gauss_nll(r_next: NDArray[np.float64], var_pred: NDArray[np.float64]) -> float:
    v = np.maximum(var_pred, 1e-30)
    return 0.5 * float(np.sum(np.log(v) + r_next**2 / v))


def fit_ewma(r: NDArray[np.float64]) -> EwmaParams:
    """Maximum-likelihood decay for EWMA variance (Gaussian one-step likelihood)."""
    r = _check_fit_input(r)
    var0 = float(np.var(r))

    def nll(lam: float) -> float:
        v = ewma_var(r[:-1], lam, var0)
        return _gauss_nll(r[1:], v)

    from scipy import optimize


    res = optimize.minimize_scalar(nll, bounds=(0.80, 0.9995), method="bounded")
    if not res.success:
        raise ForecastError(f"EWMA fit did not converge: {res.message}")
    return EwmaParams(lam=float(res.x), var0=var0)


def ewma_cov(r: NDArray[np.float64], lam: float, init_cov: NDArray[np.float64] | None = None
             ) -> NDArray[np.float64]:
    """EWMA covariance forecasts, shape (T, N, N); cov[t] is for hour t+1, made at hour t.

    `init_cov` (e.g. the fit window's covariance) seeds the filter; without it the filter starts
    at zero and warms up, so no row ever depends on a later one.
    """
    outer = r[:, :, None] * r[:, None, :]
    zi = np.full((1, *outer.shape[1:]), 0.0)
    if init_cov is not None:
        zi[0] = lam * np.asarray(init_cov)
    return iir1(outer, 1.0 - lam, lam, zi[0])


def cov_to_corr(cov: NDArray[np.float64]) -> NDArray[np.float64]:
    """Correlation from covariance (last two axes); zero-variance assets get 0 off-diagonal."""
    sd = np.sqrt(np.maximum(np.diagonal(cov, axis1=-2, axis2=-1), 0.0))
    denom = sd[..., :, None] * sd[..., None, :]
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    idx = np.arange(cov.shape[-1])
    corr[..., idx, idx] = 1.0
    return np.clip(corr, -1.0, 1.0)


# ---------------------------------------------------------------- GARCH(1,1)


def garch_var(r: NDArray[np.float64], p: GarchParams, var0: float | None = None
              ) -> NDArray[np.float64]:
    """v[t] = omega + alpha*r[t]^2 + beta*v[t-1]: the variance forecast for t+1 made at t."""
    r = np.asarray(r, dtype=float)
    v0 = p.long_run_var if var0 is None else var0
    x = p.omega + p.alpha * r**2
    return iir1(x, 1.0, p.beta, p.beta * v0)


def _garch_from_theta(theta: NDArray[np.float64], var: float) -> GarchParams:
    # theta -> (alpha, beta) with alpha, beta > 0 and alpha + beta < 1; omega by variance targeting
    a, b = 1.0 / (1.0 + np.exp(-theta))
    persistence = 0.9999 * b
    alpha = persistence * a
    beta = persistence - alpha
    return GarchParams(omega=var * (1.0 - persistence), alpha=float(alpha), beta=float(beta))


def fit_garch(r: NDArray[np.float64]) -> GarchParams:
    """GARCH(1,1) by Gaussian MLE with variance targeting (omega set by the sample variance)."""
    r = _check_fit_input(r)
    var = float(np.var(r))

    def nll(theta: NDArray[np.float64]) -> float:
        p = _garch_from_theta(theta, var)
        return _gauss_nll(r[1:], garch_var(r[:-1], p, var))

    from scipy import optimize


    res = optimize.minimize(nll, x0=np.array([-2.0, 4.0]), method="Nelder-Mead",
                            options={"xatol": 1e-4, "fatol": 1e-3, "maxiter": 400})
    if not np.isfinite(res.fun):
        raise ForecastError(f"GARCH fit did not converge: {res.message}")
    return _garch_from_theta(res.x, var)


def garch_horizon_var(v_next: NDArray[np.float64] | float, p: GarchParams, horizon_h: int
                      ) -> NDArray[np.float64]:
    """Sum of the variance forecasts for hours t+1..t+H (the H-hour return variance).

    E[v_{t+k}] = vbar + phi^(k-1) (v_{t+1} - vbar), summed in closed form.
    """
    phi, vbar = p.persistence, p.long_run_var
    geo = (1.0 - phi**horizon_h) / (1.0 - phi)
    return horizon_h * vbar + geo * (np.asarray(v_next) - vbar)


def annualised(vol_per_h: float) -> float:
    """Hourly vol to annual (crypto trades 8,760 hours a year)."""
    return vol_per_h * math.sqrt(8760.0)
