"""Markdown for benchmarks/results/backtest.md from the study's JSON (run_backtest_study.py).

Every verdict here is computed from the numbers, so a rerun after the gas table changes
rewrites the whole page consistently.
"""

from __future__ import annotations

from typing import Any

from keeper.backtest import report

BAND_GOAL, THRESHOLD_GOAL = 0.85, 0.70


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")


def verdict(rows: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Preventative against the tuned band and threshold in one window (test numbers)."""
    p, b, t = (rows[f] for f in ("preventative", "band", "threshold"))
    out = {f: rows[f]["time_outside_outer_band_pct"] for f in ("preventative", "band",
                                                                "threshold")}
    no_more = out["preventative"] <= min(out["band"], out["threshold"]) + 1e-9
    vb = p["total_cost_bps"] / b["total_cost_bps"]
    vt = p["total_cost_bps"] / t["total_cost_bps"]
    return {"vs_band": vb, "vs_threshold": vt, "out": out, "no_more_outside": no_more,
            "never_exceeds": vb <= 1.0 and vt <= 1.0 and no_more,
            "band_goal": vb <= BAND_GOAL and no_more, "threshold_goal": vt <= THRESHOLD_GOAL
            and no_more}


def _tests(sec: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {f: s["test"] for f, s in sec.items()}


def _mark(ok: bool, ratio: float, goal: float) -> str:
    return "met" if ok else f"missed ({ratio:.2f}x vs {goal:.2f}x)"


def headline(results: dict[str, Any]) -> list[str]:
    lines = ["| window | vault | prev / best band | prev / best threshold | % hours outside "
             "(prev / band / threshold) | never above either | <= 0.85x band | "
             "<= 0.70x threshold |", "|---|---|---|---|---|---|---|---|"]
    cases = [("2022-23 (tuned 2019-21)", s, _tests(results["main"]["sizes"][s]["total"]))
             for s in results["main"]["sizes"]]
    cases += [("walk-forward 2021-23, chained", s, rows)
              for s, rows in results["walk_forward"]["chained"].items()]
    for blk in results["walk_forward"]["blocks"]:
        cases += [(f"walk-forward block {blk['label']}", s, _tests(blk["sizes"][s]["total"]))
                  for s in blk["sizes"]]
    for label, size, rows in cases:
        v = verdict(rows)
        o = v["out"]
        lines.append(
            f"| {label} | {size} | {v['vs_band']:.2f}x | {v['vs_threshold']:.2f}x | "
            f"{o['preventative']:.3f} / {o['band']:.3f} / {o['threshold']:.3f} | "
            f"{'yes' if v['never_exceeds'] else 'NO'} | "
            f"{_mark(v['band_goal'], v['vs_band'], BAND_GOAL)} | "
            f"{_mark(v['threshold_goal'], v['vs_threshold'], THRESHOLD_GOAL)} |")
    return lines


def chained_table(rows: dict[str, dict[str, float]]) -> list[str]:
    cols = ("total_cost_bps", "gas_cost_bps", "fee_cost_bps", "impact_cost_bps",
            "tracking_penalty_bps", "time_outside_outer_band_pct", "n_trades")
    ref = rows["band"]["total_cost_bps"]
    lines = ["| policy | total | gas | fee | impact | track.pen | % out | trades | vs band |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f, r in rows.items():
        lines.append(f"| {f} | " + " | ".join(f"{r[c]:.2f}" if c != "n_trades"
                                               else str(int(r[c])) for c in cols)
                     + f" | {r['total_cost_bps'] / ref:.2f}x |")
    return lines


def block_params(blocks: list[dict[str, Any]], size: str) -> list[str]:
    lines = ["| block | train | test | band | threshold | preventative |",
             "|---|---|---|---|---|---|"]
    for b in blocks:
        sec = b["sizes"][size]["total"]
        cells = [", ".join(f"{k}={v}" for k, v in sec[f]["chosen_params"].items())
                 for f in ("band", "threshold", "preventative")]
        lines.append(f"| {b['label']} | {b['train'][0]} -> {b['train'][1]} | "
                     f"{b['test'][0]} -> {b['test'][1]} | " + " | ".join(cells) + " |")
    return lines


def loan_lines(loan: dict[str, Any]) -> list[str]:
    lines = []
    for win, rows in loan.items():
        band = rows["band"]
        lines += [f"\n**{win}** ($10M equity, ETH collateral, USDC debt; target LTV 50%, band "
                  "40-65%, ripcord 75%, liquidation at 82.5%)\n",
                  "| policy | liquidations | near misses (HF < 1.05) | min HF | actions | "
                  "deleverage cost (bps of equity) | vs band | crash days: min HF |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, m in rows.items():
            crash = ", ".join(f"{d} {hf:.2f}" for d, hf in m["crash_day_min_hf"].items())
            rel = m["deleverage_cost_bps"] / band["deleverage_cost_bps"] \
                if band["deleverage_cost_bps"] else float("nan")
            lines.append(f"| {name} | {m['liquidations']} | {m['near_miss_episodes']} | "
                         f"{m['min_health_factor']:.3f} | {m['actions']} | "
                         f"{m['deleverage_cost_bps']:.0f} | {rel:.2f}x | {crash} |")
        p = rows["preventative"]
        worse = [d for d, hf in p["crash_day_min_hf"].items()
                 if hf < min(rows["band"]["crash_day_min_hf"][d],
                             rows["threshold"]["crash_day_min_hf"][d])]
        ok = (p["deleverage_cost_bps"] <= 0.85 * band["deleverage_cost_bps"]
              and p["min_health_factor"] >= band["min_health_factor"]
              and p["liquidations"] == 0 and not worse)
        lines.append(f"\nGoal (cost <= 0.85x band, min HF >= band's, 0 liquidations, every "
                     f"crash day's min HF >= the reactive rules'): **{'met' if ok else 'missed'}**"
                     + (f" (crash days below a reactive rule: {', '.join(worse)})" if worse
                        else "") + ".")
    return lines


def render(results: dict[str, Any], bench: str, plots: list[str]) -> str:
    g, main = results["gas_table"], results["main"]
    parts = [
        "# Backtest study: preventative rebalancing against the classic rules\n",
        "Regenerated by `.venv/bin/python -m benchmarks.run_backtest_study` "
        f"({results['seconds']:.0f} s wall, {results.get('cpu_seconds', float('nan')):.0f} s "
        "CPU, 2 workers) from `../shared/data` and the shipped gas "
        "table. Method, cost model and the reading of these numbers: "
        "[docs/backtest.md](../../docs/backtest.md).\n",
        f"Gas table used: rebalance fixed {g['rebalance_fixed']:,} + {g['rebalance_per_leg']:,} "
        f"per leg + {g['rebalance_per_extra_hop']:,} per extra hop; adjustCollateral "
        f"{g['adjust_collateral']:,}; ripcord {g['ripcord']:,} (source: {g['source']}).\n",
        "Grids (tuned on each window's training rows, objective: minimum total cost): "
        + "; ".join(f"{f} {v['size']} ({', '.join(f'{k} {x}' for k, x in v['grid'].items())})"
                    for f, v in results["grids"].items()) + ".\n",
        "## Verdict per window and vault size (test numbers only)\n", *headline(results),
        "\n## 2022-23 (tuned on 2019-01-17 -> 2021-12-31)\n",
        f"Vol fit (rows before 2022-01-01): {main['fit']}\n"]
    for size, res in main["sizes"].items():
        parts += [f"\n### {size}: minimum total cost\n", report.markdown_table(res["total"]),
                  f"\n### {size}: minimum trading cost with <= 0.5% of hours outside "
                  "(the hard-limit view)\n", report.markdown_table(res["limit"])]
    wf = results["walk_forward"]
    parts.append("\n## Walk-forward 2021-01 -> 2023-12 (24 months tuning, 6 months test, "
                 "chained)\n")
    for size, rows in wf["chained"].items():
        parts += [f"\n### {size}: chained test results (bps of NAV over the three years)\n",
                  *chained_table(rows), f"\nChosen parameters per block ({size}):\n",
                  *block_params(wf["blocks"], size)]
    parts.append("\n## Collateral position\n")
    parts += loan_lines(results["collateral"])
    parts.append("\n## Frontier (2022-23)\n")
    parts += [f"![{p}]({p})" for p in plots]
    parts.append("\n## Speed (benchmarks/bench_backtest.py)\n\n```\n" + bench.strip()
                 + "\n```\n")
    return "\n".join(parts) + "\n"
