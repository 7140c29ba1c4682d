"""Out-of-sample study (issue 5): tune on 2019-2021, report 2022-2023, at $10M and $100k.

Needs ../shared/data (prices_hourly_2019_2023.csv, daily_prices_gas_2018_2023.csv,
gas_hourly_2021_2023.csv). Writes benchmarks/results/backtest.md, backtest_study.json and
backtest_frontier_*.png. Run: .venv/bin/python benchmarks/run_backtest_study.py [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from keeper.backtest import collateral, defaults, engine, market, report, sweep  # noqa: E402
from keeper.backtest.data import parse_date  # noqa: E402
from keeper.policy import make_policy  # noqa: E402

START, SPLIT, END = "2019-01-17", "2022-01-01", "2023-12-31"
SIZES = {"$10M": 10_000_000.0, "$100k": 100_000.0}
GAS_MODELS = {"real gas (daily, hourly where it exists)": False,
              "with the intraday profile model": True}


def _market(profile: bool) -> tuple[market.Market, int, int, int]:
    gas = [str(DATA / "daily_prices_gas_2018_2023.csv"), str(DATA / "gas_hourly_2021_2023.csv")]
    mkt, i0, i1 = market.from_files(str(DATA / "prices_hourly_2019_2023.csv"), gas,
                                    defaults.SYMBOLS, start=START, end=END, fit_before=SPLIT,
                                    gas_profile=profile)
    return mkt, i0, mkt.index(parse_date(SPLIT)), i1


def _fresh_pool(mkt: market.Market, spec: engine.VaultSpec, sec: dict[str, Any],
                test: tuple[int, int]) -> dict[str, Any]:
    """Same chosen params, fresh-pool recovery between clips (no retune)."""
    fresh = replace(spec, cost_model=replace(spec.cost_model, recovery="fresh"))
    out = {}
    for fam in ("band", "band+split", "preventative"):
        name, params = sec[fam]["policy"], sec[fam]["chosen_params"]
        res = engine.run(mkt, fresh, make_policy(name, params), *test, params)
        out[fam] = engine.metrics(res, fresh)
    return out


LOAN_POLICIES = {"band (reactive: deleverage above 65%)": ("band", {}),
                 "preventative, ltv_act_prob 0.05": ("preventative", {"ltv_act_prob": 0.05}),
                 "preventative, ltv_act_prob 0.01": ("preventative", {"ltv_act_prob": 0.01})}


def loan_study(mkt: market.Market, i0: int, s: int, i1: int) -> dict[str, Any]:
    """Collateral replay: test window, and the whole 2019-2023 run for the crash days."""
    spec, loan, out = defaults.vault_spec(), collateral.LoanSpec(), {}
    for label, (name, params) in LOAN_POLICIES.items():
        pol = make_policy(name, params)
        out[label] = {"test": collateral.run_loan(mkt, spec, pol, loan, s, i1),
                      "all_2019_2023": collateral.run_loan(mkt, spec, pol, loan, i0, i1),
                      "crash_day_min_hf": collateral.crash_day_min_hf(mkt, spec, pol, loan, i0,
                                                                      i1)}
    return out


def study(workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for gas_label, profile in GAS_MODELS.items():
        mkt, i0, s, i1 = _market(profile)
        if not profile:
            results["collateral"] = loan_study(mkt, i0, s, i1)
        for size_label, nav in SIZES.items():
            t0 = time.perf_counter()
            spec = defaults.vault_spec(nav)
            res = sweep.train_test(mkt, spec, list(sweep.GRIDS), (i0, s - 1), (s, i1),
                                   objectives=("total", "limit"), workers=workers)
            res["fresh_pool"] = _fresh_pool(mkt, spec, res["total"], (s, i1))
            res["seconds"] = time.perf_counter() - t0
            res["fit"] = mkt.fit_note
            key = f"{size_label} | {gas_label}"
            results[key] = res
            report.frontier_plot(res["train_frontier"],
                                 OUT / f"backtest_frontier_{_slug(key)}.png")
            print(f"{key}: {res['seconds']:.0f} s", flush=True)
    return results


HEAD = """# Backtest: preventative rebalancing vs the classic rules (issue 5)

Produced by `benchmarks/run_backtest_study.py` from `../shared/data` (real Binance hourly closes,
Etherscan daily gas, two real hourly gas windows). Vault: 40% ETH, 30% BTC, 10% LINK, 20% USDC,
outer band +-500 bps on every asset. Parameters are chosen on 2019-01-17 -> 2021-12-31 (LINK starts
2019-01-16) and every number in the tables below is from 2022-01-01 -> 2023-12-31, which was not
used for tuning, for the vol fit or for the gas profile.

## Cost model and conventions
- **Gas**: (60k overhead + 105k per swap leg) x gas price x ETH price at that hour. Gas price:
  real hourly where it exists (2021-11-26 -> 2022-01-26 block average; 2023-10-27 -> 2023-12-31
  block-median base fee + the median observed tip where tips are missing), else Etherscan's daily
  average, else a flat 30 gwei default (never needed here). "With the intraday profile model":
  daily gas x an hour-of-day profile (mean 1, so the daily average is kept) calibrated on the
  hourly rows before 2022-01-01 only. This is a MODEL and is shown beside the real-gas results.
  Policies never see the profile: they learn it from trailing gas (EWMA level, 14-day hour-of-day
  EWMA, AR(1) deviation).
- **Fees**: ETH via USDC/WETH 0.05% (500 ppm); BTC and LINK via their 0.3% WETH pools then
  USDC/WETH: 3,500 ppm.
- **Impact** (Uniswap v3 in range, cost q^2/(2D+q), mid moves ~q/D): ETH D = $276M (median of the
  2024-01-05 USDC/WETH minute file, virtual reserve / 2; a tick-move regression the same day gives
  $334M); BTC D = $165M (WBTC/WETH median $412M over 2021-05 -> 2021-12, in series with
  USDC/WETH); LINK D = $10M (ASSUMED: no LINK pool data in ../data; this is the weakest number,
  and LINK is where most impact cost comes from at $10M). Depths are held constant 2019-2023.
- **Splitting**: pool recovers to within one fee tier between clips (each later clip in the
  same direction within 3 h pays min(previous move, fee tier) extra). The fresh-pool model
  is shown on one line per table for comparison.
- **Tracking penalty**: 0.5 x gamma x NAV x d' Sigma d per hour, gamma = 2 (moderate
  mean-variance risk aversion; not tuned), Sigma the causal EWMA covariance. Tables report it
  separately (`track.pen`), and the second table per case uses a hard limit instead.
- **NAV** is held at the nominal size (holdings rescaled each hour, no cost), so "$10M" stays
  $10M while prices move 10x. Costs are in bps of NAV summed over the whole 2-year test window
  (not annualised).
- `TE rms`: RMS of weight deviations over hours and assets (bps). `% out`: share of hours with any
  weight outside +-500 bps after that hour's trade. `breaches`: number of such episodes.
- Policy params and grids (sizes in the tables): calendar period_h {12..1440} (8); threshold width
  {100..500} (7); band and band+split width {150..500} x return fraction {edge 0, 0.25, 0.5,
  target 1} (24 each); preventative width {300,400,500} x horizon {12,24,72} x ret {0.25,0.5,0.75}
  (27). The decomposition rows switch one lever off at the chosen preventative params (no retune).
"""

TAIL = """
## Honest verdict and what limits it
- **$100k, real gas: both goals met.** Preventative 0.64x the tuned band and threshold (here these
  are the same point: with a fixed gas cost the band tunes to width 500 with trades all the way back
  to target), with no more time outside the band (0.00%). The gain is gas: 17 trades against 10,
  but at cheaper hours and with smaller fee volume (5.5-7 vs 19 bps). In the decomposition the
  whole gain does NOT come from the gas-timing lever (switching it off at the same params gives
  0.58-0.60x). It comes from the cost-aware trigger and size (J minimisation). So "prefers
  cheap-gas hours" is not shown to add value on daily gas.
- **$100k, intraday-profile gas model: 0.62x, but 0.01% of hours (2 h, 2 episodes) outside the
  band against 0.00% for band and threshold.** Under the strict "no more time outside" rule both
  goals are formally missed. Here vol scaling helps (0.76x without it).
- **$10M: 15% goal missed.** 0.95x band with real gas, 1.02x with the profile model. The 30% goal
  against threshold is met by a wide margin (0.24x), but a plain band policy also gets 0.25x:
  convex LINK impact punishes trade-to-target. Vol scaling is neutral to slightly negative at
  $10M (0.94x and 0.89x with it off). This matches backtesting.md's "0-7%, third". It was NOT
  switched off afterwards, because that would tune on the test window.
- **Splitting adds nothing here.** After the first run, optional splitting is disabled while a
  weight is outside the outer band, so that splitting cannot leave the vault outside it. Every tuned
  band then triggers at the outer band (width 500), so band+split equals band. At the tuned
  preventative params the split lever's decision almost never fires: the `no-split` row equals the
  full policy, except at $10M with the profile model, where splitting costs about 0.09x. The fee
  tier of the 3,500 ppm routes is larger than the impact saved by clipping $10M-vault trades. The
  fresh-pool model (which overstates splitting) makes preventative 0.88x at $10M.
- **What limits it:** (1) at $10M, costs are fee plus LINK impact, and the LINK depth is an
  assumption ($10M). Prediction cannot lower fee volume below what the band already trades.
  (2) The tracking penalty at gamma = 2 is small, so every family tunes to the widest allowed band
  (the grid edge at the outer band), and prevention has little tracking risk to buy down. (3) Gas
  timing needs a real intraday pattern: only ~6% of the test hours have real hourly gas.
  (4) The training grid choice is noisy. The profile-model run picked different preventative
  params (ret 0.5) than the real-gas run did (ret 0.25).
- **Process note:** the study was run twice. After the first run I made two changes: no optional
  splitting outside the outer band, and the optimiser's edge capped at 98% of the band so bps
  rounding cannot leave a weight on the edge. Both came from seeing band breaches in the first
  run's tables, which included the test window. Neither changes a grid or a parameter value. In the
  first run, preventative was 1.09x band at $10M and 0.74x at $100k (real gas).

## Reading the numbers
- **Frontier**: `backtest_frontier_*.png` plots total cost against % hours outside the outer band
  for every training-grid point of every family. The claim to check is "lower cost at no more
  risk": the verdict table compares test cost at the tuned points and the time outside the band.
- **Collateral**: every policy shares the reactive rule (deleverage above 65%, releverage below
  40%, urgent ripcord at 75%); the preventative policy also deleverages early when the closed-form
  P(LTV reaches the ripcord within its horizon) exceeds `ltv_act_prob` (first passage of log LTV
  with drift, checked against Monte Carlo in tests). `ltv_act_prob` was not tuned; two values are
  shown. Deleverage trades are single clips in the ETH pool (impact is convex, so smaller, earlier
  deleverages cost less).
"""


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")[:40]


# ---------------------------------------------------------------- markdown


def _ratio(sec: dict[str, Any], a: str, b: str, col: str = "total_cost_bps") -> float:
    return float(sec[a]["test"][col] / sec[b]["test"][col])


def verdict_lines(results: dict[str, Any], objective: str = "total") -> list[str]:
    lines = ["| vault | gas model | prev / band | prev / band+split | prev / threshold | "
             "% out: prev vs band vs threshold | 15% goal | 30% goal |", "|" + "---|" * 8]
    for key, res in results.items():
        sec = res[objective]
        pb, pbs, pt = (_ratio(sec, "preventative", x) for x in ("band", "band+split",
                                                                "threshold"))
        out = [sec[f]["test"]["time_outside_outer_band_pct"] for f in ("preventative", "band",
                                                                       "threshold")]
        no_more = out[0] <= min(out[1], out[2]) + 1e-9
        g15 = "met" if (pb <= 0.85 and no_more) else "missed"
        g30 = "met" if (pt <= 0.70 and no_more) else "missed"
        size, gas_label = key.split(" | ")
        lines.append(f"| {size} | {gas_label} | {pb:.2f}x | {pbs:.2f}x | {pt:.2f}x | "
                     f"{out[0]:.2f} / {out[1]:.2f} / {out[2]:.2f} | {g15} | {g30} |")
    return lines


def loan_lines(loan: dict[str, Any]) -> list[str]:
    lines = ["\n## Collateral position ($10M equity, ETH collateral, USDC debt, target LTV 50%, "
             "band 40-65%, ripcord 75%, liquidation at 82.5%)\n",
             "| policy | window | liquidations | near-miss episodes (HF<1.05) | min HF | actions | "
             "deleverage+releverage cost (bps of equity) |", "|---|---|---|---|---|---|---|"]
    for label, r in loan.items():
        for win in ("test", "all_2019_2023"):
            m = r[win]
            lines.append(f"| {label} | {win} | {m['liquidations']} | {m['near_miss_episodes']} | "
                         f"{m['min_health_factor']:.3f} | {m['actions']} | "
                         f"{m['deleverage_cost_bps']:.0f} |")
    lines += ["\nMinimum health factor on the crash days (replayed from 30 days before; 2020 and "
              "2021 are training years):\n", "| policy | " + " | ".join(collateral.CRASH_DAYS)
              + " |", "|---|" + "---|" * len(collateral.CRASH_DAYS)]
    for label, r in loan.items():
        hf = r["crash_day_min_hf"]
        lines.append(f"| {label} | " + " | ".join(f"{hf.get(d, float('nan')):.3f}"
                                                  for d in collateral.CRASH_DAYS) + " |")
    return lines


def frontier_line(points: list[dict[str, Any]]) -> str:
    """Cheapest training point per family at three risk levels: the frontier in numbers."""
    out = []
    for fam in sorted({p["label"] for p in points}):
        pts = [p for p in points if p["label"] == fam]
        cells = []
        for lim in (0.0, 0.5, 100.0):
            ok = [p["total_cost_bps"] for p in pts if p["time_outside_outer_band_pct"] <= lim]
            cells.append(f"{min(ok):.1f}" if ok else "-")
        out.append(f"{fam} {'/'.join(cells)}")
    return ("Training frontier (cheapest total bps at % out = 0 / <= 0.5 / any): "
            + "; ".join(out))


def render(results: dict[str, Any], bench: str) -> str:
    parts = [HEAD]
    loan = results.pop("collateral", None)
    for key, res in results.items():
        parts.append(f"\n### {key} (tune 2019-01-17 -> 2021-12-31, test 2022-01-01 -> "
                     f"2023-12-31; sweep {res['seconds']:.0f} s)\n")
        parts.append("Objective: minimum total cost (trading + tracking penalty) on the "
                     "training years.\n")
        parts.append(report.markdown_table(res["total"]))
        parts.append("\nObjective: minimum trading cost with time outside the outer band "
                     "<= 0.5% on the training years (the hard-limit view).\n")
        parts.append(report.markdown_table(res["limit"]))
        fp = res["fresh_pool"]
        parts.append("\nSame chosen params, fresh pool between clips (overstates splitting): "
                     + "; ".join(f"{k} {v['total_cost_bps']:.2f} bps" for k, v in fp.items()))
        parts.append("\n" + frontier_line(res["train_frontier"]))
        parts.append(f"\nVol fit (training rows only): {res['fit']}\n")
    parts.append("\n## Verdict against the issue's goals (objective: total cost)\n")
    parts += verdict_lines(results)
    parts.append("\nHard-limit objective:\n")
    parts += verdict_lines(results, "limit")
    if loan:
        parts += loan_lines(loan)
    parts.append(TAIL)
    parts.append("\n## Speed (benchmarks/bench_backtest.py)\n\n```\n" + bench.strip()
                 + "\n```\n")
    parts.append("Goals: one backtest < 5 s and a 50-point sweep < 2 min on 2 cores. Met by "
                 "calendar, threshold and band (+split). MISSED by preventative: it runs its "
                 "closed-form breach probability and, when acting, a bounded scipy search every "
                 "hour. Next step: cache the per-asset log-ratio vols per hour, or screen on a "
                 "cheaper bound.\n")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA} (the shared data folder beside the checkout)")
    OUT.mkdir(parents=True, exist_ok=True)
    js = OUT / "backtest_study.json"
    if not args.render_only:
        results = study(args.workers)
        js.write_text(json.dumps(results, indent=1, default=str))
        print("wrote", js)
    results = json.loads(js.read_text())
    bench_file = OUT / "bench_backtest.txt"
    bench = bench_file.read_text() if bench_file.is_file() else "(run bench_backtest.py)"
    (OUT / "backtest.md").write_text(render(results, bench))
    print("wrote", OUT / "backtest.md")


if __name__ == "__main__":
    main()
