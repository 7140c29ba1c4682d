"""What a replay prints: one line per hour (weights against targets and bands, gas, the decision
and its whole reason, and the backtester's action), a line per transaction, a progress bar, and
the summary against the threshold rule. `--quiet` keeps the transactions and the summary;
`--json` prints the summary as JSON and nothing else."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from keeper.replay.compare import HourRow, model_gas
from keeper.replay.live import LiveHour
from keeper.units import WEI_PER_GWEI


class RichView:
    """The replay's lines on a rich console; `mode` is "full", "quiet" or "json"."""

    def __init__(self, console: Console, mode: str = "full", title: str = "replay") -> None:
        self.console = console
        self.mode = mode
        self.title = title
        self.info: dict[str, Any] = {}
        self.progress: Progress | None = None
        self.task: Any = None

    # ------------------------------------------------------------ the protocol

    def say(self, line: str) -> None:
        if self.mode != "json":
            self.console.print(Text(line), soft_wrap=True)

    def begin(self, info: dict[str, Any]) -> None:
        self.info = info
        if self.mode == "json":
            return
        for line in header_lines(info):
            self.console.print(line, soft_wrap=True)
        if self.mode == "full":
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("hours"),
                                     TimeElapsedColumn(), console=self.console)
            self.task = self.progress.add_task(self.title, total=info["hours"])
            self.progress.start()

    def hour(self, row: HourRow) -> None:
        if self.mode == "json":
            return
        if self.mode == "full":
            self.console.print(hour_line(row, self.info), soft_wrap=True)
            if row.why:
                self.console.print(Text(f"      differs from the backtest: {row.why}",
                                        style="yellow"), soft_wrap=True)
        if row.live.sent:
            line = tx_line(row.live, self.info["decimals"], model_gas(row.live, self.info["model"]))
            self.console.print(line, soft_wrap=True)
        if self.progress is not None:
            self.progress.advance(self.task)

    def end(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.mode == "json":
            self.console.print_json(json.dumps(summary, default=str))
            return
        self.console.print(summary_table(summary, self.title))
        for line in footer_lines(summary):
            self.console.print(line, soft_wrap=True)


# ------------------------------------------------------------------ lines


def header_lines(info: dict[str, Any]) -> list[Text]:
    targets = "  ".join(f"{s} {t / 100:g}%" for s, t in info["targets"].items())
    params = ", ".join(f"{k}={v}" for k, v in info["params"].items()) or "defaults"
    return [
        Text(f"{info['window']}: {info['hours']} hours of real prices and gas, a "
             f"${info['nav_usd']:,.0f} vault on the local market, policy {info['policy']} "
             f"({params}); the backtester runs the same hours", style="bold"),
        Text(f"targets {targets}; each hour shows weight/target in %, * outside the inner band "
             f"(±{info['inner_bps'] / 100:g}%), ! outside the outer band "
             f"(±{info['outer_bps'] / 100:g}%), the gas price, the keeper's decision and the "
             "backtester's action"),
        *(Text(f"cost model: {note}", style="dim") for note in info["cost_model"]),
    ]


def weight_cells(symbols: tuple[str, ...], weights: tuple[int, ...], targets: tuple[int, ...],
                 inner: int, outer: int) -> Text:
    out = Text()
    for s, w, t in zip(symbols, weights, targets, strict=True):
        dev = abs(w - t)
        mark, style = ("!", "bold red") if dev > outer else (("*", "yellow") if dev > inner
                                                             else (" ", ""))
        out.append(f"{s} {w / 100:4.1f}/{t / 100:g}{mark} ", style=style)
    return out


def hour_line(row: HourRow, info: dict[str, Any]) -> Text:
    h, r = row.live, row.live.result
    when = _hhmm(row.ts)
    line = Text(f"{when}  ")
    line.append_text(weight_cells(r.symbols, r.weights_bps, r.targets_bps, info["inner_bps"],
                                  info["outer_bps"]))
    line.append(f" {h.hour_gas_wei / WEI_PER_GWEI:5.1f} gwei  ")
    line.append_text(_decision(h))
    agree = "backtest: same" if row.agree else f"backtest: {row.bt_taken} ≠"
    line.append(f"  [{agree}]", style="green" if row.agree else "yellow")
    return line


def _decision(h: LiveHour) -> Text:
    r = h.result
    if h.sent:
        return Text(f"{r.action.upper()} sent: {r.reason}", style="bold green")
    if r.action == "hold":
        return Text(f"hold: {r.reason}")
    return Text(f"{r.action} → {r.verdict}: {r.reason}", style="magenta")


def tx_line(h: LiveHour, decimals: dict[str, int], model_gas: int) -> Text:
    r = h.result
    legs = "; ".join(_leg(leg, decimals) for leg in r.details.get("legs", []))
    gas_usd = h.gas_used * h.gas_price_wei / 1e18 * h.eth_usd
    cost = r.details.get("cost", {})
    loss = (h.before.nav_e18 - h.after.nav_e18) / 1e18
    fees = float(cost.get("fee_usd", 0.0))
    return Text(
        f"      tx {r.tx_hash}: {legs}; gas {h.gas_used:,} (model {model_gas:,}) at "
        f"{h.gas_price_wei / WEI_PER_GWEI:.1f} gwei = ${gas_usd:,.2f}; pool fees ${fees:,.2f}, "
        f"slippage ${loss - fees:,.2f}; total ${gas_usd + loss:,.2f}", style="cyan")


def _leg(leg: dict[str, Any], decimals: dict[str, int]) -> str:
    sell, buy = leg["sell"], leg["buy"]
    amount_in = leg["amount_in_raw"] / 10 ** decimals.get(sell, 18)
    amount_out = leg["quoted_out_raw"] / 10 ** decimals.get(buy, 18)
    via = f", {leg['hops']} hops" if leg.get("hops", 1) > 1 else ""
    return (f"{_amount(amount_in)} {sell} → {_amount(amount_out)} {buy} "
            f"(${leg['notional_usd']:,.0f}{via})")


def _amount(x: float) -> str:
    return f"{x:,.0f}" if x >= 1000 else f"{x:,.4g}"


def _hhmm(ts: int) -> str:
    import time

    return time.strftime("%m-%d %H:%M", time.gmtime(ts))


# ------------------------------------------------------------------ summary


def summary_table(s: dict[str, Any], title: str) -> Table:
    live, bt, th = s["cost_usd"], s["backtest"], s["threshold_backtest"]
    t = Table(title=f"{title}: {s['policy']}, {s['hours']} h from {s['start']}")
    t.add_column("")
    t.add_column("live keeper", justify="right")
    t.add_column(f"backtest: {bt['policy']}", justify="right")
    t.add_column("backtest: threshold", justify="right")
    t.add_row("rebalances", str(s["rebalances_sent"]), str(bt["rebalances"]),
              str(th["rebalances"]))
    t.add_row("hours outside outer band", str(s["hours_outside_outer_band"]),
              str(bt["hours_outside_outer_band"]), str(th["hours_outside_outer_band"]))
    t.add_row("trading cost", f"${live['total']:,.2f}",
              f"${bt['cost_usd']['total']:,.2f}", f"${th['cost_usd']['total']:,.2f}")
    t.add_row("  of which gas", f"${live['gas']:,.2f}", f"${bt['cost_usd']['gas']:,.2f}",
              f"${th['cost_usd']['gas']:,.2f}")
    t.add_row("tracking penalty", f"${s['tracking_penalty_usd']:,.2f}",
              f"${bt['cost_usd']['tracking_penalty']:,.2f}",
              f"${th['cost_usd']['tracking_penalty']:,.2f}")
    t.add_row("total", f"${live['total'] + s['tracking_penalty_usd']:,.2f}",
              f"${bt['cost_usd']['total'] + bt['cost_usd']['tracking_penalty']:,.2f}",
              f"${th['cost_usd']['total'] + th['cost_usd']['tracking_penalty']:,.2f}",
              style="bold")
    return t


def footer_lines(s: dict[str, Any]) -> list[Text]:
    out = [Text(f"rebalances sent {s['rebalances_sent']}; the keeper and the backtester took "
                f"the same action in {s['action_agreement_pct']:.1f}% of the hours",
                style="bold")]
    if s["rebalances_sent"]:
        out.append(Text(f"gas per rebalance: {s['gas_used_per_rebalance']:,} measured, "
                        f"{s['model_gas_per_rebalance']:,} in the cost model "
                        f"({s['gas_model_error_pct']:+.1f}%)"))
    out.append(Text("trading cost: gas, pool fees and slippage (live: measured; backtest: the "
                    "cost model); tracking penalty: what the drift from target costs a "
                    "risk-averse holder (0.5 x gamma x NAV x variance of the deviation, per hour)",
                    style="dim"))
    out.append(Text(f"picture: {s.get('plot')}"))
    return out

