"""Speed of the backtester (not a timed test): whole processes, timed from outside.

- one 5-year hourly preventative run x 4 assets: `keeper backtest ... --json` as a subprocess;
- a 50-point preventative sweep over the same 5 years on 2 workers, as a subprocess
  (`python -m benchmarks.bench_backtest --sweep-child`: load, fit, 50 runs);
- for reference, in one process: each family's run with the fast path and hour by hour.

Needs ../shared/data (or VAULT_SHARED_DATA). Goals: one run under 2 s, the sweep under 10 s,
on 2 cores. Wall time and the CPU time of the process (user + sys) are both reported: the
machine is shared, so wall time includes waiting for a core. Writes
benchmarks/results/bench_backtest.txt.
Run: .venv/bin/python -m benchmarks.bench_backtest
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VAULT_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "results" / "bench_backtest.txt"
sys.path.insert(0, str(ROOT))

PRICES = DATA / "prices_hourly_2019_2023.csv"
GAS = [DATA / "daily_prices_gas_2018_2023.csv", DATA / "gas_hourly_2021_2023.csv"]
SWEEP = {"width_bps": [400, 425, 450, 475, 500],
         "ret_scale": [0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5]}
REPEATS = 3


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child and its workers) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _best(cmd: list[str]) -> str:
    runs = [_timed(cmd) for _ in range(REPEATS)]
    wall, cpu = min(runs)
    return f"{wall:.2f} s wall, {cpu:.2f} s CPU (best of {REPEATS})"


def sweep_child() -> None:
    """The sweep as its own process: load, fit, 50 preventative runs on 2 workers."""
    from keeper.backtest import defaults, market, sweep

    mkt, i0, i1 = market.from_files(str(PRICES), [str(g) for g in GAS], defaults.SYMBOLS,
                                    start=None, end=None, fit_before="2020-01-01")
    jobs = [("p", "preventative", p, i0, i1) for p in sweep.expand(SWEEP)]
    assert len(jobs) == 50
    sweep.run_jobs(mkt, defaults.vault_spec(100_000.0), jobs, workers=2, progress=False)


def in_process() -> list[str]:
    from keeper.backtest import defaults, engine, market
    from keeper.policy import make_policy

    t = time.perf_counter()
    mkt, i0, i1 = market.from_files(str(PRICES), [str(g) for g in GAS], defaults.SYMBOLS,
                                    start=None, end=None, fit_before="2020-01-01")
    lines = [f"in process: load + fit + precompute {time.perf_counter() - t:.2f} s "
             f"({i1 - i0 + 1} hours)"]
    spec = defaults.vault_spec(100_000.0)
    for name, params in [("calendar", {}), ("threshold", {}), ("band", {"ret_frac": 0.5}),
                         ("band", {"ret_frac": 0.5, "split": True}), ("preventative", {})]:
        pol = make_policy(name, params)
        cells = []
        for fast in (True, False):
            t = time.perf_counter()
            engine.run(mkt, spec, pol, i0, i1, fast=fast)
            cells.append(f"{time.perf_counter() - t:.2f} s")
        lines.append(f"in process: one 5-year run, {name} {params}: fast path {cells[0]}, "
                     f"hour by hour {cells[1]}")
    return lines


def main() -> None:
    if "--sweep-child" in sys.argv:
        sweep_child()
        return
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    keeper = str(ROOT / ".venv" / "bin" / "keeper")
    gas = [arg for g in GAS for arg in ("--gas", str(g))]
    one = [keeper, "backtest", "--prices", str(PRICES), *gas, "--policy", "preventative",
           "--nav-usd", "100000", "--json"]
    lines = [f"whole process, one 5-year preventative run (keeper backtest --json): "
             f"{_best(one)}",
             "whole process, 50-point preventative sweep, 5 years, 2 workers: "
             f"{_best([sys.executable, '-m', 'benchmarks.bench_backtest', '--sweep-child'])}",
             *in_process()]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    OUT.write_text(text)


if __name__ == "__main__":
    main()
