"""`keeper backtest`: replay a vault on a price file under one policy, or sweep and test.

keeper/cli.py calls `register(app)`. Output: a rich table, or `--json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from keeper.errors import KeeperError


def _parse_params(text: str | None) -> dict[str, Any]:
    """`--params` as JSON ('{"width_bps": 300}') or k=v pairs ('width_bps=300,split=true')."""
    if not text:
        return {}
    if text.strip().startswith("{"):
        return dict(json.loads(text))
    out: dict[str, Any] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = json.loads(v) if v.strip() not in ("true", "false") else v == "true"
    return out


def _spec(nav_usd: float) -> Any:
    from keeper.backtest import defaults

    return defaults.vault_spec(nav_usd)


def _single(prices: str, gas: list[str], policy: str, params: dict[str, Any], nav_usd: float,
            start: str | None, end: str | None, profile: bool, fill: str,
            ) -> tuple[dict[str, Any], Any, Any]:
    from keeper.backtest import defaults, engine, market
    from keeper.policy import make_policy

    mkt, i0, i1 = market.from_files(prices, gas, defaults.SYMBOLS, start=start, end=end,
                                    fit_before=start, gas_profile=profile, fill=fill)
    spec = _spec(nav_usd)
    res = engine.run(mkt, spec, make_policy(policy, params), i0, i1, params)
    out = {**engine.metrics(res, spec), "params": params, "fit": mkt.fit_note}
    return out, res, spec


def _collateral(prices: str, gas: list[str], policy: str, params: dict[str, Any],
                equity_usd: float, start: str | None, end: str | None, fill: str
                ) -> dict[str, Any]:
    """Replay the collateral position from `start` (vols fitted on the rows before it)."""
    from keeper.backtest import collateral, defaults, market
    from keeper.policy import make_policy

    mkt, i0, i1 = market.from_files(prices, gas, defaults.SYMBOLS, start=start, end=end,
                                    fit_before=start, fill=fill)
    loan = collateral.LoanSpec(equity_usd=equity_usd)
    out = collateral.run_loan(mkt, defaults.vault_spec(), make_policy(policy, params), loan,
                              i0, i1)
    return {"policy": policy, "params": params, "start": _iso(int(mkt.ts[i0])),
            "end": _iso(int(mkt.ts[i1])), "equity_usd": equity_usd, **out,
            "fit": mkt.fit_note}


def _iso(ts: int) -> str:
    from keeper.backtest.engine import _iso as iso

    return iso(ts)


def _sweep(prices: str, gas: list[str], policy: str, nav_usd: float, start: str | None,
           end: str | None, split: str, profile: bool, fill: str, workers: int,
           quiet: bool) -> dict[str, Any]:
    from keeper.backtest import defaults, market, sweep

    mkt, i0, i1 = market.from_files(prices, gas, defaults.SYMBOLS, start=start, end=end,
                                    fit_before=split, gas_profile=profile, fill=fill)
    from keeper.backtest.data import parse_date

    s = mkt.index(parse_date(split))
    fams = list(sweep.GRIDS) if policy == "all" else [policy]
    res = sweep.train_test(mkt, _spec(nav_usd), fams, (i0, s - 1), (s, i1),
                           workers=workers, progress=not quiet)
    sec = res["total"][fams[0]] if len(fams) == 1 else res["total"]
    return {"policy": policy, "split": split, **(sec if len(fams) == 1 else {"policies": sec})}


def register(app: typer.Typer) -> None:
    """Add the `backtest` command to a typer app."""

    from keeper.cli_errors import GuardedCommand

    @app.command("backtest", cls=GuardedCommand)
    def backtest(
        prices: Annotated[Path, typer.Option(help="hourly CSV: timestamp, <sym>_usdt_close")],
        policy: Annotated[str, typer.Option(help="calendar|threshold|band|band+split|"
                                            "preventative (|all with --sweep)")] = "band",
        gas: Annotated[list[Path] | None, typer.Option(help="gas CSV, daily or hourly; repeat")]
        = None,
        params: Annotated[str | None, typer.Option(help="JSON or k=v,k=v")] = None,
        nav_usd: Annotated[float, typer.Option()] = 10_000_000.0,
        start: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
        end: Annotated[str | None, typer.Option(help="YYYY-MM-DD (inclusive)")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        plot: Annotated[Path | None, typer.Option(help="write a PNG")] = None,
        do_sweep: Annotated[bool, typer.Option("--sweep")] = False,
        do_collateral: Annotated[bool, typer.Option(
            "--collateral", help="replay the collateral position (equity = --nav-usd)")] = False,
        split: Annotated[str | None, typer.Option(help="train/test split date")] = None,
        gas_profile: Annotated[bool, typer.Option(help="impose the intraday gas model")] = False,
        fill: Annotated[str, typer.Option(help="error | ffill (carry prices forward)")] = "error",
        workers: Annotated[int, typer.Option()] = 2,
    ) -> None:
        """Replay a vault hour by hour under a policy and report its costs and risk."""
        console = Console()
        gas_paths = [str(g) for g in (gas or [])]
        try:
            if do_sweep:
                if not split:
                    raise typer.BadParameter("--sweep needs --split DATE")
                out = _sweep(str(prices), gas_paths, policy, nav_usd, start, end, split,
                             gas_profile, fill, workers, as_json)
                _emit(console, out, as_json)
                return
            name, p = _policy_args(policy, _parse_params(params))
            if do_collateral:
                _emit(console, _collateral(str(prices), gas_paths, name, p, nav_usd, start, end,
                                           fill), as_json)
                return
            out, res, spec = _single(str(prices), gas_paths, name, p, nav_usd, start, end,
                                     gas_profile, fill)
            if plot:
                from keeper.backtest.report import plot as draw

                draw([res], spec, plot)
            _emit(console, out, as_json)
        except KeeperError as err:
            console.print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(2) from err


def _policy_args(policy: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if policy == "band+split":
        return "band", {**params, "split": True}
    return policy, params


def _emit(console: Console, out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    from keeper.backtest.report import metrics_table

    if "crash_day_min_hf" in out:
        from keeper.backtest.report import loan_table

        console.print(loan_table(out))
    elif "train" in out:
        console.print(metrics_table({"train": out["train"], "test": out["test"]},
                                    f"{out['policy']} {out['chosen_params']}"))
    elif "policies" in out:
        console.print(metrics_table({k: v["test"] for k, v in out["policies"].items()},
                                    "out of sample"))
    else:
        console.print(metrics_table({out["policy"]: out}, "backtest"))
