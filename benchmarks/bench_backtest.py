"""Speed benchmark (not a timed test): one 5-year hourly backtest x 4 assets, and a 50-point
sweep on 2 workers. Needs ../shared/data. Run: .venv/bin/python benchmarks/bench_backtest.py
Goals from issue 5: one backtest < 5 s; a 50-point sweep < 2 min on 2 cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from keeper.backtest import defaults, engine, market, sweep  # noqa: E402
from keeper.policy import make_policy  # noqa: E402


def main() -> None:
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    t0 = time.perf_counter()
    mkt, i0, i1 = market.from_files(str(DATA / "prices_hourly_2019_2023.csv"),
                                    [str(DATA / "daily_prices_gas_2018_2023.csv")],
                                    defaults.SYMBOLS, start=None, end=None,
                                    fit_before="2020-01-01")
    prep = time.perf_counter() - t0
    spec = defaults.vault_spec()
    print(f"load + fit + precompute: {prep:.2f} s ({i1 - i0 + 1} hours)")
    for name, params in [("threshold", {}), ("band", {"ret_frac": 0.5}),
                         ("band", {"ret_frac": 0.5, "split": True}), ("preventative", {})]:
        t = time.perf_counter()
        engine.run(mkt, spec, make_policy(name, params), i0, i1)
        print(f"one backtest, {name} {params}: {time.perf_counter() - t:.2f} s")
    grid = sweep.expand({"width_bps": [150, 200, 250, 300, 350, 400, 450, 500, 550, 600],
                         "ret_frac": [0.0, 0.25, 0.5, 0.75, 1.0]})
    jobs = [("band", "band", p, i0, i1) for p in grid]
    t = time.perf_counter()
    sweep.run_jobs(mkt, spec, jobs, workers=2, progress=False)
    print(f"50-point band sweep, 5 years, 2 workers: {time.perf_counter() - t:.1f} s")
    pgrid = sweep.expand({"width_bps": [300, 400, 500], "horizon_h": [12, 24, 72],
                          "ret_frac": [0.25, 0.5, 0.75]})[:25] * 2
    t = time.perf_counter()
    sweep.run_jobs(mkt, spec, [("p", "preventative", p, i0, i1) for p in pgrid], workers=2,
                   progress=False)
    print(f"50-point preventative sweep, 5 years, 2 workers: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
