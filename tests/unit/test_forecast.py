"""Forecast models: closed forms against Monte Carlo, MLE fits on simulated series, causality."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bt_helpers import make_state

from keeper.errors import ForecastError
from keeper.forecast import breach, build_forecast, forecast_from_history, vol


def test_first_passage_with_drift_matches_monte_carlo() -> None:
    for b, mu, sig, t in [(0.1, 0.001, 0.02, 24.0), (0.05, -0.0005, 0.01, 48.0)]:
        closed = breach.first_passage_prob(b, mu, sig, t)
        mc = breach.mc_first_passage(b, mu, sig, t, steps=1000, n_paths=10_000, seed=1)
        # discrete monitoring misses some crossings, so MC sits slightly below
        assert closed - 0.03 < mc <= closed + 0.01


def test_first_passage_pins_known_value() -> None:
    # driftless: P = 2 (1 - Phi(b / (sigma sqrt T)))
    b, sig, t = 0.1, 0.02, 25.0
    assert breach.first_passage_prob(b, 0.0, sig, t) == pytest.approx(
        2 * (1 - breach.norm_cdf(b / (sig * 5.0))), rel=1e-12)
    assert breach.expected_first_passage(0.1, 0.01) == pytest.approx(10.0)
    assert breach.expected_first_passage(0.1, -0.01) == math.inf


def test_two_sided_exit_matches_monte_carlo_asymmetric_band() -> None:
    x, lo, hi, sig, t = 0.02, -0.05, 0.1, 0.02, 24.0
    closed = breach.exit_prob(x, lo, hi, sig, t)
    rng = np.random.default_rng(0)
    path = x + np.cumsum(sig * math.sqrt(t / 2000) * rng.standard_normal((20_000, 2000)), axis=1)
    mc = float(((path.max(axis=1) >= hi) | (path.min(axis=1) <= lo)).mean())
    assert closed == pytest.approx(0.8458, abs=1e-3)
    assert abs(closed - mc) < 0.02


def test_two_sided_exit_time_is_x_minus_lo_times_hi_minus_x_over_var() -> None:
    assert breach.expected_exit_time(0.0, -0.05, 0.05, 0.01) == pytest.approx(25.0)
    rng = np.random.default_rng(3)
    dt, sig = 0.05, 0.01
    pos = np.zeros(4000)
    t_exit = np.full(4000, np.nan)
    for k in range(1, 4000):
        live = np.isnan(t_exit)
        pos[live] += sig * math.sqrt(dt) * rng.standard_normal(live.sum())
        t_exit[live & (np.abs(pos) >= 0.05)] = k * dt
    assert np.nanmean(t_exit) == pytest.approx(25.0, rel=0.08)


def test_two_asset_band_breach_is_exact_against_mc() -> None:
    w, t, b = [0.55, 0.45], [0.5, 0.5], [0.1, 0.1]
    vols, corr = [0.01, 0.004], [[1.0, 0.3], [0.3, 1.0]]
    closed, _ = breach.band_breach(w, t, b, vols, corr, 72.0)
    mc, _ = breach.mc_band_breach(w, t, b, vols, corr, 72.0, steps=288, n_paths=6000)
    # MC monitors 4 times an hour, so it misses a few crossings: it sits at or just below
    assert closed - 0.04 < mc < closed + 0.015


def test_four_asset_band_breach_close_to_mc() -> None:
    w, t = [0.43, 0.3, 0.11, 0.16], [0.4, 0.3, 0.1, 0.2]
    vols = [0.01, 0.008, 0.015, 0.0]
    corr = [[1, 0.8, 0.6, 0], [0.8, 1, 0.6, 0], [0.6, 0.6, 1, 0], [0, 0, 0, 1]]
    closed, et = breach.band_breach(w, t, [0.05] * 4, vols, corr, 48.0)
    mc, _ = breach.mc_band_breach(w, t, [0.05] * 4, vols, corr, 48.0, steps=192, n_paths=6000)
    assert 0.05 < mc < 0.95
    assert abs(closed - mc) < 0.06
    assert et > 0


def test_ltv_breach_closed_form_matches_mc() -> None:
    closed = breach.ltv_breach_prob(0.6, 0.7, 0.01, 72.0)
    mc = breach.mc_ltv_breach_prob(0.6, 0.7, 0.01, 72.0, steps=1000)
    assert 0.05 < closed < 0.5
    assert closed - 0.03 < mc <= closed + 0.01
    assert breach.ltv_breach_prob(0.0, 0.7, 0.01, 72.0) == 0.0


def test_mc_weights_keep_sum_one_and_start_near_w0() -> None:
    w = breach.mc_weights([0.5, 0.3, 0.2], [0.01, 0.01, 0.0], np.eye(3), 24.0, steps=24,
                          n_paths=1000)
    assert np.allclose(w.sum(axis=2), 1.0)
    assert np.allclose(w[:, -1].mean(axis=0), [0.5, 0.3, 0.2], atol=0.01)


def _garch_path(n: int, omega: float, alpha: float, beta: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r, v = np.zeros(n), omega / (1 - alpha - beta)
    for t in range(n):
        r[t] = math.sqrt(v) * rng.standard_normal()
        v = omega + alpha * r[t] ** 2 + beta * v
    return r


def test_garch_mle_recovers_simulated_parameters() -> None:
    r = _garch_path(20_000, 1e-6, 0.08, 0.9, seed=5)
    p = vol.fit_garch(r)
    assert p.alpha == pytest.approx(0.08, abs=0.02)
    assert p.beta == pytest.approx(0.9, abs=0.03)
    assert p.long_run_var == pytest.approx(float(np.var(r)), rel=1e-6)


def test_ewma_mle_prefers_fast_decay_on_clustered_series() -> None:
    lam = vol.fit_ewma(_garch_path(10_000, 1e-6, 0.15, 0.8, seed=2)).lam
    assert 0.8 <= lam < 0.97


def test_garch_horizon_variance_equals_iterated_forecast() -> None:
    p = vol.GarchParams(omega=1e-6, alpha=0.1, beta=0.85)
    v, total = 4e-5, 0.0
    for _ in range(24):
        total += v
        v = p.omega + (p.alpha + p.beta) * v
    assert float(vol.garch_horizon_var(4e-5, p, 24)) == pytest.approx(total, rel=1e-10)


def test_variance_filters_are_causal() -> None:
    r = _garch_path(500, 1e-6, 0.08, 0.9, seed=1)
    r2 = r.copy()
    r2[300:] *= 5.0
    p = vol.GarchParams(omega=1e-6, alpha=0.08, beta=0.9)
    assert np.array_equal(vol.garch_var(r, p)[:300], vol.garch_var(r2, p)[:300])
    assert np.array_equal(vol.ewma_var(r, 0.95, 1e-4)[:300], vol.ewma_var(r2, 0.95, 1e-4)[:300])
    c1, c2 = vol.ewma_cov(np.c_[r, r * 0.5], 0.97), vol.ewma_cov(np.c_[r2, r2 * 0.5], 0.97)
    assert np.array_equal(c1[:300], c2[:300])


def test_fit_rejects_short_or_bad_history() -> None:
    with pytest.raises(ForecastError, match="need >= 200"):
        vol.fit_garch(np.zeros(50))
    with pytest.raises(ForecastError, match="NaN"):
        vol.fit_ewma(np.r_[np.ones(300) * 0.01, np.nan])


def test_build_forecast_carries_clock_and_probabilities() -> None:
    state = make_state([4300, 3000, 1000, 1700])
    vols = [0.01, 0.008, 0.015, 0.0]
    corr = np.eye(4).tolist()
    f = build_forecast(state, vol_per_h=vols, corr=corr, horizon_h=24.0, now_ts=1_700_000_000)
    f_calm = build_forecast(state, vol_per_h=[v / 3 for v in vols], corr=corr, horizon_h=24.0,
                            now_ts=0)
    assert f.now_ts == 1_700_000_000
    assert 0.0 < f_calm.breach_prob < f.breach_prob < 1.0
    assert f.long_run_vol_per_h_frac == tuple(vols)


def test_forecast_from_history_fits_and_builds() -> None:
    rng = np.random.default_rng(0)
    n = 800
    px = np.exp(np.cumsum(0.01 * rng.standard_normal((n, 3)), axis=0)) * 100
    hist = np.c_[px, np.ones(n)]
    f = forecast_from_history(make_state([4000, 3000, 1000, 2000]), hist, horizon_h=24, now_ts=1)
    assert all(v > 0 for v in f.vol_per_h_frac[:3]) and f.vol_per_h_frac[3] == 0.0
    assert f.vol_per_h_frac[0] == pytest.approx(0.01, rel=0.25)


def test_inlined_band_breach_is_the_reference_composition_bit_for_bit() -> None:
    import random

    rnd = random.Random(2)

    def same(x: float, y: float) -> bool:
        return (x == y and math.copysign(1, x) == math.copysign(1, y)) or (
            math.isnan(x) and math.isnan(y))

    for _ in range(5000):
        n = rnd.choice([2, 3, 4, 4, 5])
        t = [rnd.random() for _ in range(n)]
        t = [x / sum(t) for x in t]
        w = [max(0.0, x + rnd.gauss(0, rnd.choice([0.01, 0.05, 0.2]))) for x in t]
        w = [x / sum(w) for x in w]
        r = rnd.random()
        if r < 0.05:
            w[0] = 1.0
        elif r < 0.1:
            w[1] = 0.0
        bands = [rnd.choice([0.01, 0.03, 0.05, 0.1, 0.5]) for _ in range(n)]
        vols = [rnd.choice([0.0, rnd.random() * 0.03, rnd.random()]) for _ in range(n)]
        corr = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
        for i in range(n):
            for j in range(i):
                corr[i][j] = corr[j][i] = rnd.uniform(-0.99, 0.99)
        h = rnd.choice([0.0, 1.0, 12.0, 24.0, 72.0, 500.0])
        p_ref, et_ref = breach._band_breach_reference(w, t, bands, vols, corr, h)
        p, et = breach.band_breach(w, t, bands, vols, corr, h)
        assert same(p, p_ref) and same(et, et_ref)
        assert same(breach.band_breach_prob(w, t, bands, vols, corr, h), p_ref)


def test_iir1_is_scipys_first_order_lfilter() -> None:
    """The forecast's filter (vol, covariance, gas outlook) against scipy.signal.lfilter, with
    block edges, a ragged last block and 1-, 2- and 3-D inputs."""
    import numpy as np
    from scipy import signal

    from keeper.forecast.vol import IIR_BLOCK, iir1

    rng = np.random.default_rng(0)
    for shape, a, b0 in [((3 * IIR_BLOCK,), 0.9, 1.0), ((1000, 4, 4), 0.975, 0.025),
                         ((IIR_BLOCK + 1, 3), 0.8, 1.0), ((5,), 0.9995, 0.3), ((1,), 0.5, 2.0)]:
        x = rng.standard_normal(shape) ** 2
        zi = rng.random(shape[1:]) if len(shape) > 1 else np.float64(0.37)
        ref, _ = signal.lfilter([b0], [1.0, -a], x, axis=0,
                                zi=np.asarray(zi).reshape((1, *shape[1:])))
        assert np.allclose(iir1(x, b0, a, zi), ref, rtol=1e-13, atol=0.0)
