"""Tables (rich and markdown) and the PNG: weights vs bands, trades, cumulative cost per policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from keeper.backtest.engine import RunResult, VaultSpec
from keeper.units import BPS

COLS = ("total_cost_bps", "gas_cost_bps", "fee_cost_bps", "impact_cost_bps",
        "tracking_penalty_bps", "tracking_error_bps", "time_outside_outer_band_pct", "n_trades",
        "hard_breaches")
SHORT = ("total", "gas", "fee", "impact", "track.pen", "TE rms", "% out", "trades", "breaches")


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def metrics_table(rows: dict[str, dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    t.add_column("policy")
    for s in SHORT:
        t.add_column(s, justify="right")
    for name, m in rows.items():
        t.add_row(name, *(_fmt(m[c]) for c in COLS))
    return t


LOAN_KEYS = ("liquidations", "near_miss_episodes", "min_health_factor", "actions",
             "deleverage_cost_bps")


def loan_table(out: dict[str, Any]) -> Table:
    """A collateral replay: its summary, then the minimum health factor of each crash day."""
    t = Table(title=f"collateral: {out['policy']} {out['params']} {out['start']} -> {out['end']}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k in LOAN_KEYS:
        t.add_row(k, _fmt(out[k]))
    for day, hf in out["crash_day_min_hf"].items():
        t.add_row(f"min HF on crash day {day}", _fmt(hf))
    return t


def markdown_table(section: dict[str, Any], base: str = "band") -> str:
    """OOS table: one row per policy, test metrics, vs the tuned band and threshold."""
    ref_b = section.get(base, {}).get("test", {}).get("total_cost_bps")
    ref_t = section.get("threshold", {}).get("test", {}).get("total_cost_bps")
    head = ("| policy | grid | chosen params | " + " | ".join(SHORT)
            + " | vs band | vs threshold |")
    lines = [head, "|" + "---|" * (len(SHORT) + 5)]
    for name, sec in section.items():
        m = sec["test"]
        params = ", ".join(f"{k}={v}" for k, v in sec["chosen_params"].items())
        rel = [f"{m['total_cost_bps'] / r:.2f}x" if r else "-" for r in (ref_b, ref_t)]
        lines.append(f"| {name} | {sec['grid_size'] or '-'} | {params} | "
                     + " | ".join(_fmt(m[c]) for c in COLS) + f" | {rel[0]} | {rel[1]} |")
    return "\n".join(lines)


def plot(results: list[RunResult], spec: VaultSpec, out: str | Path) -> None:
    """Weights with the outer band and trades (first policy), cumulative cost for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    r0 = results[0]
    days = (r0.ts - r0.ts[0]) / 86400.0
    for j, s in enumerate(spec.symbols):
        tgt = spec.targets_bps[j] / BPS
        line = ax1.plot(days, r0.weights[:, j], lw=0.7, label=s)[0]
        for edge in (tgt - spec.outer_band_bps / BPS, tgt + spec.outer_band_bps / BPS):
            ax1.axhline(edge, color=line.get_color(), ls=":", lw=0.6)
    if r0.trade_hours.size:
        ax1.plot(days[r0.trade_hours], np.full(r0.trade_hours.size, 0.02), "|", color="k",
                 label="trades")
    ax1.set_ylabel(f"weight ({r0.policy})")
    ax1.legend(loc="upper right", fontsize=7)
    for r in results:
        nav = float(r.nav.mean())
        cum = np.cumsum(r.gas_usd + r.fee_usd + r.impact_usd + r.penalty_usd) / nav * BPS
        ax2.plot((r.ts - r.ts[0]) / 86400.0, cum, label=_label(r))
    ax2.set_ylabel("cumulative total cost (bps of NAV)")
    ax2.set_xlabel("days")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _label(r: RunResult) -> str:
    p = ",".join(f"{k}={v}" for k, v in r.params.items())
    return f"{r.policy} {p}".strip()


def frontier_plot(points: list[dict[str, Any]], out: str | Path,
                  tested: list[dict[str, Any]] | None = None, title: str = "") -> None:
    """Total cost against % hours outside the outer band: every training grid point (left) and
    each family's tuned point on the test window (right), one colour per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({p["label"] for p in points} | {p["label"] for p in tested or []})
    colours = {f: f"C{i}" for i, f in enumerate(fams)}
    fig, axes = plt.subplots(1, 2 if tested else 1, figsize=(12 if tested else 7, 5),
                             squeeze=False)
    for ax, pts, what in ((axes[0][0], points, "training window: every grid point"),
                          *([(axes[0][1], tested, "test window: the tuned point")]
                            if tested else [])):
        for fam in fams:
            xs = [p["time_outside_outer_band_pct"] for p in pts if p["label"] == fam]
            ys = [p["total_cost_bps"] for p in pts if p["label"] == fam]
            ax.scatter(xs, ys, s=14 if pts is points else 60, label=fam, color=colours[fam],
                       marker="o" if pts is points else "*")
        ax.set_xlabel("% hours with a weight outside target +- 5 pp")
        ax.set_ylabel("total cost (bps of NAV over the window)")
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=0.01)  # most tuned points sit at or near 0%
        ax.set_xlim(left=-0.001)
        ax.set_title(what, fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
