"""The out-of-sample study, in one command, from ../shared/data and the shipped gas table.

Windows (every number reported is from a test window; parameters are chosen by the sweep on
the window's own training rows, and the vol model is fitted on the rows before its test start):
- "2022-23": tune 2019-01-17 -> 2021-12-31, test 2022-01-01 -> 2023-12-31;
- walk-forward: six 6-month test blocks 2021-01 -> 2023-12, each tuned on the 24 months before
  it (the first on 2019-01-17 -> 2020-12-31), results chained (costs summed, time outside the
  band weighted by hours).
Both at $10M and $100k, plus the collateral replay and the frontier plots. Writes
benchmarks/results/backtest.md, backtest_study.json and backtest_frontier_*.png.

Run: .venv/bin/python -m benchmarks.run_backtest_study [--workers 2] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VAULT_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks import study_report  # noqa: E402
from keeper.backtest import collateral, defaults, market, report, sweep  # noqa: E402
from keeper.backtest.data import parse_date  # noqa: E402
from keeper.costs import VAULT_GAS  # noqa: E402
from keeper.policy import make_policy  # noqa: E402

FIRST = "2019-01-17"  # LINK starts 2019-01-16 10:00
SIZES = {"$10M": 10_000_000.0, "$100k": 100_000.0}
FAMILIES = list(sweep.GRIDS)
MAIN = ("2022-23", FIRST, "2021-12-31", "2022-01-01", "2023-12-31")
BLOCKS = [("2021H1", "2019-01-17", "2020-12-31", "2021-01-01", "2021-06-30"),
          ("2021H2", "2019-07-01", "2021-06-30", "2021-07-01", "2021-12-31"),
          ("2022H1", "2020-01-01", "2021-12-31", "2022-01-01", "2022-06-30"),
          ("2022H2", "2020-07-01", "2022-06-30", "2022-07-01", "2022-12-31"),
          ("2023H1", "2021-01-01", "2022-12-31", "2023-01-01", "2023-06-30"),
          ("2023H2", "2021-07-01", "2023-06-30", "2023-07-01", "2023-12-31")]
LOAN_POLICIES = {"band": ("band", {}), "threshold": ("threshold", {}),
                 "preventative": ("preventative", {})}


def gas_files() -> list[str]:
    return [str(DATA / "daily_prices_gas_2018_2023.csv"), str(DATA / "gas_hourly_2021_2023.csv")]


def window_market(train_start: str, test_start: str, test_end: str
                  ) -> tuple[market.Market, tuple[int, int], tuple[int, int]]:
    """The market of one window: vols fitted on the rows before the test start."""
    mkt, _, i1 = market.from_files(str(DATA / "prices_hourly_2019_2023.csv"), gas_files(),
                                   defaults.SYMBOLS, start=train_start, end=test_end,
                                   fit_before=test_start)
    i0, s = mkt.index(parse_date(train_start)), mkt.index(parse_date(test_start))
    return mkt, (i0, s - 1), (s, i1)


def one_window(win: tuple[str, str, str, str, str], workers: int) -> dict[str, Any]:
    label, tr0, _, te0, te1 = win
    t0 = time.perf_counter()
    mkt, train, test = window_market(tr0, te0, te1)
    out: dict[str, Any] = {"label": label, "train": [tr0, win[2]], "test": [te0, te1],
                           "fit": mkt.fit_note, "sizes": {}}
    for size, nav in SIZES.items():
        res = sweep.train_test(mkt, defaults.vault_spec(nav), FAMILIES, train, test,
                               objectives=("total", "limit"), workers=workers, progress=False)
        out["sizes"][size] = res
    out["seconds"] = time.perf_counter() - t0
    print(f"window {label}: {out['seconds']:.0f} s", flush=True)
    return out


def chain(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Walk-forward: per size and policy, the test blocks chained (costs summed, hours
    weighted), and each block's own verdict numbers."""
    out: dict[str, Any] = {}
    for size in SIZES:
        rows: dict[str, dict[str, float]] = {}
        for b in blocks:
            for fam, sec in b["sizes"][size]["total"].items():
                m = sec["test"]
                r = rows.setdefault(fam, {"total_cost_bps": 0.0, "trading_cost_bps": 0.0,
                                          "gas_cost_bps": 0.0, "fee_cost_bps": 0.0,
                                          "impact_cost_bps": 0.0, "tracking_penalty_bps": 0.0,
                                          "hours": 0, "hours_outside": 0.0, "n_trades": 0})
                for k in ("total_cost_bps", "trading_cost_bps", "gas_cost_bps", "fee_cost_bps",
                          "impact_cost_bps", "tracking_penalty_bps", "n_trades"):
                    r[k] += m[k]
                r["hours"] += m["hours"]
                r["hours_outside"] += m["time_outside_outer_band_pct"] * m["hours"] / 100.0
        for r in rows.values():
            r["time_outside_outer_band_pct"] = 100.0 * r["hours_outside"] / r["hours"]
        out[size] = rows
    return out


def loan_study() -> dict[str, Any]:
    """The collateral replay ($10M equity) on the 2022-23 test window and on the walk-forward
    span 2021-2023, vols fitted before each; crash days found in each window's data."""
    out: dict[str, Any] = {}
    for label, start, end in (("2022-23", "2022-01-01", "2023-12-31"),
                              ("2021-23", "2021-01-01", "2023-12-31")):
        mkt, i0, i1 = market.from_files(str(DATA / "prices_hourly_2019_2023.csv"), gas_files(),
                                        defaults.SYMBOLS, start=start, end=end,
                                        fit_before=start)
        out[label] = {name: collateral.run_loan(mkt, defaults.vault_spec(),
                                                make_policy(p, params), collateral.LoanSpec(),
                                                i0, i1)
                      for name, (p, params) in LOAN_POLICIES.items()}
    return out


def cpu_seconds() -> float:
    """CPU time of this process and of the workers it has waited for (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def study(workers: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    results: dict[str, Any] = {"gas_table": {k: getattr(VAULT_GAS, k) for k in (
        "rebalance_fixed", "rebalance_per_leg", "rebalance_per_extra_hop", "adjust_collateral",
        "ripcord", "source")}, "grids": {f: {"policy": g[0], "grid": g[1],
                                              "size": len(sweep.expand(g[1]))}
                                          for f, g in sweep.GRIDS.items()}}
    results["main"] = one_window(MAIN, workers)
    results["walk_forward"] = {"blocks": [one_window(b, workers) for b in BLOCKS]}
    results["walk_forward"]["chained"] = chain(results["walk_forward"]["blocks"])
    results["collateral"] = loan_study()
    results["seconds"] = time.perf_counter() - t0
    results["cpu_seconds"] = cpu_seconds()
    return results


def plots(results: dict[str, Any]) -> list[str]:
    names = []
    for size in SIZES:
        name = f"backtest_frontier_{study_report.slug(size)}.png"
        sec = results["main"]["sizes"][size]
        tested = [{**sec["total"][f]["test"], "label": f} for f in FAMILIES]
        report.frontier_plot(sec["train_frontier"], OUT / name, tested=tested,
                             title=f"{size} vault: cost against time outside +-5 pp")
        names.append(name)
    return names


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
        js.write_text(json.dumps(study(args.workers), indent=1, default=str))
        print("wrote", js)
    results = json.loads(js.read_text())
    names = plots(results)
    bench_file = OUT / "bench_backtest.txt"
    bench = bench_file.read_text() if bench_file.is_file() else "(run bench_backtest.py)"
    (OUT / "backtest.md").write_text(study_report.render(results, bench, names))
    print("wrote", OUT / "backtest.md", f"(study {results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
