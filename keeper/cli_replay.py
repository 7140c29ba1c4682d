"""`keeper replay` and `keeper demo`: a window of real hours through the live pipeline on a local
anvil, beside the backtester on the same inputs. keeper/cli.py calls `register(app)`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from keeper.cli_backtest import _parse_params
from keeper.cli_errors import GuardedCommand
from keeper.errors import ConfigError, DataError, KeeperError
from keeper.redact import redact

DEMO_HOURS = 72

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="networks.yaml to load")]
HoursOpt = Annotated[int, typer.Option(min=1, max=2000, help="hours to replay")]
StartOpt = Annotated[str | None, typer.Option(help="first hour, e.g. '2022-06-10 00:00:00'")]
PolicyOpt = Annotated[str | None, typer.Option(
    help="calendar | threshold | band | preventative (default: the config's)")]
ParamsOpt = Annotated[str | None, typer.Option(help="policy parameters: JSON or k=v,k=v")]
NavOpt = Annotated[int, typer.Option("--nav-usd", min=10_000, help="the vault's NAV at the start")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the summary as JSON, nothing else")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="transactions and summary only")]
PlotOpt = Annotated[Path | None, typer.Option(help="where to write the PNG")]
PortOpt = Annotated[int | None, typer.Option(min=1, max=65535, help="anvil port (default: free)")]


def _mode(as_json: bool, quiet: bool) -> str:
    return "json" if as_json else ("quiet" if quiet else "full")


def _run(settings: Any, mode: str, title: str) -> dict[str, Any]:
    from keeper.replay.output import RichView
    from keeper.replay.run import run_replay

    view = RichView(Console(), mode, title)  # --json: the summary alone on stdout
    try:
        return run_replay(settings, view).summary
    except KeeperError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {title}: {redact(str(err))}",
                                   highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(err, ConfigError | DataError) else 1) from err


def register(app: typer.Typer) -> None:
    """Add `replay` and `demo` to a typer app."""

    @app.command("replay", cls=GuardedCommand)
    def replay(
        config: ConfigOpt = Path("networks.yaml"),
        prices: Annotated[Path | None, typer.Option(
            help="hourly CSV: timestamp, <sym>_usdt_close (default: the shipped June 2022 "
            "slice)")] = None,
        gas: Annotated[list[Path] | None, typer.Option(help="gas CSV, daily or hourly; repeat")]
        = None,
        start: StartOpt = None,
        hours: HoursOpt = DEMO_HOURS,
        policy: PolicyOpt = None,
        params: ParamsOpt = None,
        nav_usd: NavOpt = 1_000_000,
        as_json: JsonOpt = False,
        quiet: QuietOpt = False,
        plot: PlotOpt = None,
        port: PortOpt = None,
    ) -> None:
        """Run real hours through the live pipeline on a local anvil (market moved to each
        hour's prices, the chain's base fee to its gas; the keeper reads, decides, plans,
        simulates and sends) and through the backtester on the same inputs; print both
        decisions hour by hour, why they differ, and the summary. Writes a PNG."""
        from keeper.replay.run import ReplaySettings
        from keeper.replay.window import DEFAULT_START

        settings = ReplaySettings(
            config=config, prices=prices, gas=tuple(gas or ()), start=start or DEFAULT_START,
            hours=hours, policy=policy, params=_params(params), nav_usd=nav_usd, port=port,
            plot=plot)
        _run(settings, _mode(as_json, quiet), "replay")

    @app.command("demo", cls=GuardedCommand)
    def demo(
        config: ConfigOpt = Path("networks.yaml"),
        hours: HoursOpt = DEMO_HOURS,
        start: StartOpt = None,
        policy: PolicyOpt = None,
        nav_usd: NavOpt = 1_000_000,
        as_json: JsonOpt = False,
        quiet: QuietOpt = False,
        port: PortOpt = None,
    ) -> None:
        """The product in a minute: a local chain, the real Uniswap v3 and a $1M vault, and the
        keeper through 72 real hours of the June 2022 crash (shipped with the package), beside
        the backtester and the threshold rule. Writes state/demo.png."""
        from keeper.demo_run import demo_settings

        settings = demo_settings(config=config, hours=hours, start=start, policy=policy,
                                 nav_usd=nav_usd, port=port)
        _run(settings, _mode(as_json, quiet), "demo")


def _params(text: str | None) -> dict[str, Any]:
    try:
        return _parse_params(text)
    except ValueError as err:
        raise typer.BadParameter(f"--params '{text}' is not JSON or k=v,k=v ({err})") from err
