"""The replay's picture: each asset's weight against time with its target, inner and outer bands,
the live keeper's rebalances (and the backtester's), and the gas price beneath."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keeper.units import BPS, WEI_PER_GWEI

DAY_S = 86400

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import NDArray

    from keeper.replay.run import ReplayReport
    from keeper.replay.window import Window


def plot_replay(report: ReplayReport, win: Window, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rows = report.rows
    first = rows[0].live.result
    symbols, targets = first.symbols, first.targets_bps
    inner, outer = (int(x) for x in (rows[0].live.before.assets[0].inner_band_bps,
                                     rows[0].live.before.assets[0].outer_band_bps))
    times = [r.ts / DAY_S for r in rows]  # matplotlib's date numbers: days since 1970
    live = np.array([[a.weight_bps for a in r.live.after.assets] for r in rows]) / BPS * 100
    bt = report.twin.res.weights * 100
    sent = [times[i] for i, r in enumerate(rows) if r.live.sent]
    bt_trades = [times[int(k)] for k in report.twin.res.trade_hours]
    fig, axes = plt.subplots(len(symbols) + 1, 1, figsize=(11, 2.0 * len(symbols) + 2.2),
                             sharex=True, height_ratios=[*([2] * len(symbols)), 1.4])
    for j, (sym, tgt) in enumerate(zip(symbols, targets, strict=True)):
        _weight_panel(axes[j], times, live[:, j], bt[:, j], sym, tgt / 100, inner / 100,
                      outer / 100, sent, bt_trades)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=6, fontsize=8,
               bbox_to_anchor=(0.5, 0.965), frameon=False)
    gas = [r.live.hour_gas_wei / WEI_PER_GWEI for r in rows]
    axes[-1].step(times, gas, where="post", color="tab:gray", lw=1.2)
    axes[-1].set_ylabel("gas (gwei)")
    axes[-1].set_ylim(bottom=0)
    s = report.summary
    fig.suptitle(f"{s['policy']} on the local market: {s['hours']} h from {s['start']}, "
                 f"{s['rebalances_sent']} rebalance{'' if s['rebalances_sent'] == 1 else 's'}, "
                 f"{s['action_agreement_pct']:.1f}% of hours "
                 "as the backtest", fontsize=11)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%b %d %H:%M"))  # type: ignore[no-untyped-call]
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _weight_panel(a: Axes, times: list[float], live: NDArray[np.float64],
                  bt: NDArray[np.float64], sym: str, tgt: float, inner: float, outer: float,
                  sent: list[float], bt_trades: list[float]) -> None:
    a.axhspan(tgt - outer, tgt + outer, color="tab:orange", alpha=0.12,
              label=f"outer band ±{outer:g}%")
    a.axhspan(tgt - inner, tgt + inner, color="tab:green", alpha=0.15,
              label=f"inner band ±{inner:g}%")
    a.axhline(tgt, color="k", lw=0.6, ls=":")
    a.plot(times, live, color="tab:blue", lw=1.4, label="live keeper")
    a.plot(times, bt, color="tab:red", lw=1.0, ls="--", label="backtest")
    for i, t in enumerate(sent):
        a.axvline(t, color="tab:blue", lw=0.8, alpha=0.6,
                  label="live rebalance" if i == 0 else None)
    ymin = min(tgt - outer - 1.0, float(np.min(live)) - 0.5)
    ymax = max(tgt + outer + 1.0, float(np.max(live)) + 0.5)
    if bt_trades:
        marker_y = ymax - 0.06 * (ymax - ymin)
        a.plot(bt_trades, [marker_y] * len(bt_trades), "v", color="tab:red", ms=5,
               label="backtest rebalance")
    a.set_ylim(ymin, ymax)
    a.set_ylabel(f"{sym} weight %")
