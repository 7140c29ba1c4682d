"""Breach probabilities and expected times to breach.

Closed forms (scalar, `math` only, so a policy can call them every hour cheaply):
- one-sided first passage of a Brownian motion with drift (the 2-asset log-ratio, log LTV);
- two-sided exit of a driftless Brownian motion from an interval (a weight band), by images.
Monte Carlo (vectorised numpy) for N-asset weights and the collateral ratio; tests check the
closed forms against it.

Weights map to log-ratios: for asset i, z_i = log(w_i / (1 - w_i)) is the log of its value over
the rest of the vault, and is exactly a Brownian motion for 2 assets under GBM prices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

SQRT2 = math.sqrt(2.0)
MAX_IMAGES = 6


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / SQRT2))


# ---------------------------------------------------------------- one-sided, with drift


def first_passage_prob(barrier: float, mu: float, sigma: float, horizon: float) -> float:
    """P(max_{s<=T} X_s >= b) for X_0 = 0, dX = mu dt + sigma dW, b > 0."""
    if barrier <= 0.0:
        return 1.0
    if sigma <= 0.0 or horizon <= 0.0:
        return 1.0 if mu * horizon >= barrier else 0.0
    s = sigma * math.sqrt(horizon)
    a = norm_cdf((mu * horizon - barrier) / s)
    expo = 2.0 * mu * barrier / sigma**2
    b = math.exp(expo) * norm_cdf((-barrier - mu * horizon) / s) if expo < 700 else 0.0
    return min(1.0, a + b)


def expected_first_passage(barrier: float, mu: float) -> float:
    """E[first passage time] to b > 0: b/mu for mu > 0, infinite otherwise."""
    if barrier <= 0.0:
        return 0.0
    return barrier / mu if mu > 0.0 else math.inf


# ---------------------------------------------------------------- two-sided, driftless


def exit_prob(x: float, lo: float, hi: float, sigma: float, horizon: float) -> float:
    """P(a driftless BM started at x leaves (lo, hi) within `horizon`), by the method of images."""
    if not lo < x < hi:
        return 1.0
    if sigma <= 0.0 or horizon <= 0.0:
        return 0.0
    s = sigma * math.sqrt(horizon)
    width, u = hi - lo, x - lo
    n_img = min(MAX_IMAGES, 1 + int(2.0 * s / width))  # images beyond 2k W - u >> s add < 1e-9
    inv, erf = 1.0 / (s * SQRT2), math.erf
    stay = 0.0
    for k in range(-n_img, n_img + 1):
        off = 2.0 * k * width
        stay += (erf((width - u + off) * inv) - erf((off - u) * inv)
                 - erf((width + u + off) * inv) + erf((u + off) * inv))
    stay *= 0.5
    return min(1.0, max(0.0, 1.0 - stay))


def expected_exit_time(x: float, lo: float, hi: float, sigma: float) -> float:
    """E[exit time] of a driftless BM from (lo, hi): (x - lo)(hi - x) / sigma^2."""
    if not lo < x < hi:
        return 0.0
    return (x - lo) * (hi - x) / sigma**2 if sigma > 0.0 else math.inf


# ---------------------------------------------------------------- weights <-> log ratios


def logit(w: float) -> float:
    w = min(max(w, 1e-9), 1.0 - 1e-9)
    return math.log(w / (1.0 - w))


def ratio_vol(i: int, weights: Sequence[float], vols: Sequence[float],
              corr: Sequence[Sequence[float]]) -> float:
    """Vol of log(asset i / rest of the vault): the rest is a portfolio with weights w_j/(1-w_i)."""
    rest = 1.0 - weights[i]
    if rest <= 0.0:
        return 0.0
    n = len(weights)
    c = [(-weights[j] / rest if j != i else 1.0) * vols[j] for j in range(n)]
    var = sum(c[a] * c[b] * corr[a][b] for a in range(n) for b in range(n) if c[a] and c[b])
    return math.sqrt(max(var, 0.0))


def asset_exit_prob(i: int, weights: Sequence[float], lo_w: float, hi_w: float,
                    vols: Sequence[float], corr: Sequence[Sequence[float]],
                    horizon: float) -> tuple[float, float]:
    """(P(weight i leaves [lo_w, hi_w] within horizon), expected exit time) via its log-ratio."""
    x, lo, hi = logit(weights[i]), logit(max(lo_w, 1e-9)), logit(min(hi_w, 1.0 - 1e-9))
    sig = ratio_vol(i, weights, vols, corr)
    return exit_prob(x, lo, hi, sig, horizon), expected_exit_time(x, lo, hi, sig)


def band_breach(weights: Sequence[float], targets: Sequence[float], bands: Sequence[float],
                vols: Sequence[float], corr: Sequence[Sequence[float]],
                horizon: float) -> tuple[float, float]:
    """P(any weight leaves target +- band within horizon) and the expected time to the first exit.

    Per-asset exits are combined as if independent (P = 1 - prod(1 - p_i), rate = sum of 1/E[t_i]).
    With 2 assets both weights exit together, so the result is the exact 1-asset value.
    """
    return _band_breach(weights, targets, bands, vols, corr, horizon, True)


def band_breach_prob(weights: Sequence[float], targets: Sequence[float], bands: Sequence[float],
                     vols: Sequence[float], corr: Sequence[Sequence[float]],
                     horizon: float) -> float:
    """`band_breach(...)[0]` without the expected exit time (the policies' hot path)."""
    return _band_breach(weights, targets, bands, vols, corr, horizon, False)[0]


_BAND_LOGITS: dict[tuple[float, float], tuple[float, float]] = {}


def _band_logits(t: float, b: float) -> tuple[float, float]:
    """(logit(lo), logit(hi)) of the band t +- b, as `asset_exit_prob` computes them; memoised
    (targets and bands are a handful of constants per vault)."""
    v = _BAND_LOGITS.get((t, b))
    if v is None:
        v = (logit(max(t - b, 1e-9)), logit(min(t + b, 1.0 - 1e-9)))
        if len(_BAND_LOGITS) < 4096:
            _BAND_LOGITS[(t, b)] = v
    return v


def _band_breach(weights: Sequence[float], targets: Sequence[float],  # noqa: C901 (inlined)
                 bands: Sequence[float],
                 vols: Sequence[float], corr: Sequence[Sequence[float]], horizon: float,
                 want_time: bool) -> tuple[float, float]:
    """`band_breach` with `logit`, `ratio_vol`, `exit_prob` and `expected_exit_time` inlined.

    Speed only: every float operation is the one those functions do, on the same operands and in
    the same order (min/max written as the comparisons the builtins make, NaN included), so the
    result is bit for bit `_band_breach_reference`'s (tests/unit/test_forecast.py checks it).
    """
    n = len(weights)
    if len(targets) != n or len(bands) != n:
        raise ValueError("band_breach: weights, targets and bands differ in length")
    log, sqrt, erf, inf = math.log, math.sqrt, math.erf, math.inf
    w_hi = 1.0 - 1e-9
    sqrt_h = sqrt(horizon) if horizon > 0.0 else 0.0
    logits = _BAND_LOGITS
    stay, rate = 1.0, 0.0
    seen: set[float] | None = set() if n == 2 else None
    rng = range(n)
    for i in rng:
        w, t, b = weights[i], targets[i], bands[i]
        if seen is not None:
            key = round(abs(w - t) / b, 9)
            if key in seen:
                continue
            seen.add(key)
        wc = 1e-9 if w < 1e-9 else w  # logit(w): min(max(w, 1e-9), 1 - 1e-9)
        if w_hi < wc:
            wc = w_hi
        x = log(wc / (1.0 - wc))
        lohi = logits.get((t, b))
        lo, hi = lohi if lohi is not None else _band_logits(t, b)
        # ratio_vol(i, ...): sum of c[a] c[b] corr[a][b] over the non-zero c, in index order
        rest = 1.0 - w
        if rest <= 0.0:
            sig = 0.0
        else:
            ia: list[int] = []
            ca: list[float] = []
            for j in rng:
                cj = (-weights[j] / rest if j != i else 1.0) * vols[j]
                if cj:
                    ia.append(j)
                    ca.append(cj)
            var: float = 0
            for a, c1 in zip(ia, ca, strict=True):
                row = corr[a]
                for bb, c2 in zip(ia, ca, strict=True):
                    var += c1 * c2 * row[bb]
            sig = sqrt(0.0 if var < 0.0 else var)
        # exit_prob(x, lo, hi, sig, horizon) and expected_exit_time(x, lo, hi, sig)
        if not lo < x < hi:
            stay *= 0.0  # p = 1
            # et = 0: rate += inf
            if want_time:
                rate += inf
            continue
        if sig <= 0.0 or horizon <= 0.0:
            p = 0.0
        else:
            s = sig * sqrt_h
            width, u = hi - lo, x - lo
            n_img = 1 + int(2.0 * s / width)
            if n_img > MAX_IMAGES:
                n_img = MAX_IMAGES
            inv = 1.0 / (s * SQRT2)
            wmu, wpu = width - u, width + u
            st = 0.0
            for k in range(-n_img, n_img + 1):
                off = 2.0 * k * width
                st += (erf((wmu + off) * inv) - erf((off - u) * inv)
                       - erf((wpu + off) * inv) + erf((u + off) * inv))
            st *= 0.5
            p = 1.0 - st
            p = p if p > 0.0 else 0.0
            if not p < 1.0:
                p = 1.0
        stay *= 1.0 - p
        if want_time:
            et = (x - lo) * (hi - x) / sig**2 if sig > 0.0 else inf
            rate += 0.0 if et == inf else (1.0 / et if et > 0 else inf)
    return 1.0 - stay, (1.0 / rate if rate > 0 else inf)


def _band_breach_reference(weights: Sequence[float], targets: Sequence[float],
                           bands: Sequence[float], vols: Sequence[float],
                           corr: Sequence[Sequence[float]], horizon: float
                           ) -> tuple[float, float]:
    """The readable composition `_band_breach` inlines (kept for the bit-for-bit test)."""
    stay, rate, seen = 1.0, 0.0, set()
    for i, (w, t, b) in enumerate(zip(weights, targets, bands, strict=True)):
        key = round(abs(w - t) / b, 9) if len(weights) == 2 else i
        if key in seen:
            continue
        seen.add(key)
        p, et = asset_exit_prob(i, weights, t - b, t + b, vols, corr, horizon)
        stay *= 1.0 - p
        rate += 0.0 if et == math.inf else (1.0 / et if et > 0 else math.inf)
    return 1.0 - stay, (1.0 / rate if rate > 0 else math.inf)


# ---------------------------------------------------------------- Monte Carlo


def simulate_log_prices(vols: NDArray[np.float64], corr: NDArray[np.float64], horizon_h: float,
                        steps: int, n_paths: int, seed: int,
                        drift_per_h: NDArray[np.float64] | None = None
                        ) -> NDArray[np.float64]:
    """Driftless-GBM log price paths (n_paths, steps, N), relative to now."""
    rng = np.random.default_rng(seed)
    dt = horizon_h / steps
    chol = np.linalg.cholesky(np.asarray(corr) + 1e-12 * np.eye(len(vols)))
    z = rng.standard_normal((n_paths, steps, len(vols))) @ chol.T
    mu = np.zeros(len(vols)) if drift_per_h is None else np.asarray(drift_per_h)
    inc = (mu - 0.5 * vols**2) * dt + z * vols * np.sqrt(dt)
    return np.cumsum(inc, axis=1)


def mc_weights(weights: Sequence[float], vols: Sequence[float], corr: Sequence[Sequence[float]],
               horizon_h: float, steps: int = 48, n_paths: int = 20_000, seed: int = 0
               ) -> NDArray[np.float64]:
    """Simulated weight paths (n_paths, steps, N): the weight distribution over the horizon."""
    lp = simulate_log_prices(np.asarray(vols, float), np.asarray(corr, float), horizon_h, steps,
                             n_paths, seed)
    v = np.asarray(weights, float) * np.exp(lp)
    w: NDArray[np.float64] = v / v.sum(axis=2, keepdims=True)
    return w


def mc_band_breach(weights: Sequence[float], targets: Sequence[float], bands: Sequence[float],
                   vols: Sequence[float], corr: Sequence[Sequence[float]], horizon_h: float,
                   steps: int = 200, n_paths: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """MC P(any weight leaves its band within horizon) and mean exit time among exiting paths."""
    w = mc_weights(weights, vols, corr, horizon_h, steps, n_paths, seed)
    out = np.abs(w - np.asarray(targets)) > np.asarray(bands)
    hit = out.any(axis=2)
    ever = hit.any(axis=1)
    first = np.argmax(hit, axis=1) + 1
    mean_t = float(first[ever].mean() * horizon_h / steps) if ever.any() else math.inf
    return float(ever.mean()), mean_t


def mc_first_passage(barrier: float, mu: float, sigma: float, horizon: float,
                     steps: int = 1000, n_paths: int = 20_000, seed: int = 0) -> float:
    """MC of the one-sided first passage of a drifted BM (discretely monitored)."""
    rng = np.random.default_rng(seed)
    dt = horizon / steps
    x = np.cumsum(mu * dt + sigma * np.sqrt(dt) * rng.standard_normal((n_paths, steps)), axis=1)
    return float((x.max(axis=1) >= barrier).mean())


# ---------------------------------------------------------------- collateral ratio


def ltv_breach_prob(ltv: float, max_ltv: float, vol_per_h: float, horizon_h: float) -> float:
    """P(LTV reaches max_ltv within horizon) for a stable debt against a GBM collateral.

    log LTV = log debt - log price: a BM with drift +sigma^2/2 (the GBM's Ito term), so this is
    the one-sided first passage with drift.
    """
    if ltv <= 0.0:
        return 0.0
    return first_passage_prob(math.log(max_ltv / ltv), 0.5 * vol_per_h**2, vol_per_h, horizon_h)


def mc_ltv_breach_prob(ltv: float, max_ltv: float, vol_per_h: float, horizon_h: float,
                       steps: int = 500, n_paths: int = 20_000, seed: int = 0) -> float:
    """MC of the same quantity from simulated collateral prices."""
    lp = simulate_log_prices(np.array([vol_per_h]), np.eye(1), horizon_h, steps, n_paths, seed)
    path_ltv = ltv * np.exp(-lp[:, :, 0])
    return float((path_ltv.max(axis=1) >= max_ltv).mean())
