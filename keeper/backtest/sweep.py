"""Parameter sweeps: tune on [start, split), report on [split, end].

Grids are fixed here (reported with their sizes) and similar in size across policies. Workers
are forked processes that share the precomputed `Market`; a rich progress bar shows long sweeps.
Objectives: "total" minimises total cost (trading + tracking penalty); "limit" minimises trading
cost subject to time outside the outer band <= `limit_pct` (the hard-limit view).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rich.progress import Progress

from keeper.backtest import engine
from keeper.backtest.market import Market
from keeper.errors import ConfigError
from keeper.policy import make_policy

Params = dict[str, Any]
Row = dict[str, Any]

GRIDS: dict[str, tuple[str, dict[str, list[Any]]]] = {
    "calendar": ("calendar", {"period_h": [12, 24, 48, 96, 168, 336, 720, 1440]}),
    "threshold": ("threshold", {"width_bps": [100, 150, 200, 250, 300, 400, 500]}),
    "band": ("band", {"width_bps": [150, 200, 250, 300, 400, 500],
                      "ret_frac": [0.0, 0.25, 0.5, 1.0]}),
    "band+split": ("band", {"width_bps": [150, 200, 250, 300, 400, 500],
                            "ret_frac": [0.0, 0.25, 0.5, 1.0], "split": [True]}),
    "preventative": ("preventative", {"width_bps": [400, 450, 500],
                                      "ret_scale": [0.5, 0.75, 1.0, 1.5, 2.0]}),
}
LEVERS = ("early", "vol_scaling", "gas_timing", "split")

_MKT: Market | None = None
_SPEC: engine.VaultSpec | None = None


def expand(grid: dict[str, list[Any]]) -> list[Params]:
    keys = sorted(grid)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in
                                                                               keys))]


def _one(job: tuple[str, str, Params, int, int]) -> Row:
    label, name, params, i0, i1 = job
    assert _MKT is not None and _SPEC is not None
    res = engine.run(_MKT, _SPEC, make_policy(name, params), i0, i1, params)
    return {"label": label, "params": params, **engine.metrics(res, _SPEC)}


def run_jobs(mkt: Market, spec: engine.VaultSpec, jobs: list[tuple[str, str, Params, int, int]],
             workers: int = 2, progress: bool = True) -> list[Row]:
    """Run (label, policy, params, i0, i1) jobs, in forked workers when workers > 1."""
    global _MKT, _SPEC
    _MKT, _SPEC = mkt, spec
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{len(jobs)} backtests", total=len(jobs))
        if workers <= 1:
            return [_tick(bar, task, _one(j)) for j in jobs]
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            return [_tick(bar, task, r) for r in pool.map(_one, jobs)]


def _tick(bar: Progress, task: Any, row: Row) -> Row:
    bar.advance(task)
    return row


def choose(rows: list[Row], objective: str = "total", limit_pct: float = 0.5) -> Row:
    """The best training row under the objective (ties: fewer trades)."""
    if objective == "total":
        return min(rows, key=lambda r: (r["total_cost_bps"], r["n_trades"]))
    if objective != "limit":
        raise ConfigError(f"objective must be 'total' or 'limit', got '{objective}'")
    ok = [r for r in rows if r["time_outside_outer_band_pct"] <= limit_pct]
    pool = ok or rows
    key: Callable[[Row], tuple[float, float]] = (
        (lambda r: (r["trading_cost_bps"], r["n_trades"])) if ok
        else (lambda r: (r["time_outside_outer_band_pct"], r["trading_cost_bps"])))
    return min(pool, key=key)


def train_test(mkt: Market, spec: engine.VaultSpec, families: list[str], train: tuple[int, int],
               test: tuple[int, int], *, objectives: tuple[str, ...] = ("total",),
               limit_pct: float = 0.5, workers: int = 2, progress: bool = True,
               grids: dict[str, tuple[str, dict[str, list[Any]]]] | None = None) -> dict[str, Any]:
    """Tune every family on `train`, evaluate the chosen params on `test`."""
    grids = grids or GRIDS
    jobs = [(f, grids[f][0], p, *train) for f in families for p in expand(grids[f][1])]
    rows = run_jobs(mkt, spec, jobs, workers, progress)
    picks = {(f, o): choose([r for r in rows if r["label"] == f], o, limit_pct)
             for f in families for o in objectives}
    test_jobs = [(f"{f}|{o}", grids[f][0], picks[(f, o)]["params"], *test) for f, o in picks]
    test_jobs += _lever_jobs(picks, objectives, test)
    tested = {r["label"]: r for r in run_jobs(mkt, spec, test_jobs, workers, progress)}
    return _assemble(families, objectives, picks, tested, grids, train_rows=rows)


def _lever_jobs(picks: dict[tuple[str, str], Row], objectives: tuple[str, ...],
                test: tuple[int, int]) -> list[tuple[str, str, Params, int, int]]:
    jobs = []
    for o in objectives:
        if ("preventative", o) not in picks:
            continue
        base = picks[("preventative", o)]["params"]
        for lever in LEVERS:
            jobs.append((f"preventative-no-{lever}|{o}", "preventative", {**base, lever: False},
                         *test))
    return jobs


def _assemble(families: list[str], objectives: tuple[str, ...],
              picks: dict[tuple[str, str], Row], tested: dict[str, Row],
              grids: dict[str, tuple[str, dict[str, list[Any]]]],
              train_rows: list[Row]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in objectives:
        sec = {}
        for f in families:
            sec[f] = {"policy": grids[f][0], "grid_size": len(expand(grids[f][1])),
                      "chosen_params": picks[(f, o)]["params"], "train": picks[(f, o)],
                      "test": tested[f"{f}|{o}"]}
        for lever in LEVERS:
            key = f"preventative-no-{lever}|{o}"
            if key in tested:
                sec[f"preventative-no-{lever}"] = {"policy": "preventative", "grid_size": 0,
                                                   "chosen_params": tested[key]["params"],
                                                   "test": tested[key]}
        out[o] = sec
    out["train_frontier"] = [{k: r[k] for k in ("label", "params", "total_cost_bps",
                                                "trading_cost_bps", "time_outside_outer_band_pct")}
                             for r in train_rows]
    return out
