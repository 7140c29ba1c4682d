"""The `keeper` command line: parse, call one function, print with rich (or --json).

Every command takes --network and --config. Errors are one line naming the fix (exit 2 for bad
config or input, 1 for chain trouble), never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from keeper.cli_backtest import register as register_backtest
from keeper.cli_errors import GuardedCommand, remember
from keeper.cli_replay import register as register_replay
from keeper.errors import ConfigError, DataError, KeeperError
from keeper.models import TickResult
from keeper.redact import redact

if TYPE_CHECKING:  # the keeper (web3, pydantic, the stages) loads on first use: `backtest`
    from keeper.app import Keeper  # needs none of it
    from keeper.config import KeeperConfig
    from keeper.metrics import Metrics

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="vault-keeper: preventative rebalancing for guarded on-chain vaults.",
    pretty_exceptions_enable=False,  # GuardedCommand reports errors in one line, never a traceback
)
console = Console()
err_console = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="networks.yaml to load")]
NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", help="network in the config")]
VaultOpt = Annotated[
    str | None, typer.Option("--vault", help="vault name or address (default: all)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
DEFAULT_CONFIG = Path("networks.yaml")
FAILED_VERDICTS = ("failed", "error", "halted", "skipped")  # `rebalance` exits 1 on these


def fail(err: Exception) -> None:
    """One line on stderr, exit 2 for input problems, 1 for the rest."""
    code = 2 if isinstance(err, ConfigError | DataError) else 1
    err_console.print(f"[bold red]error:[/] {redact(str(err))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _load(config: Path, network: str | None) -> KeeperConfig:
    from keeper.metrics import setup_logging

    try:
        from keeper.wiring import load

        cfg = load(config, network)
    except KeeperError as err:
        fail(err)
    remember(cfg)
    setup_logging(cfg.log_format)
    return cfg


@contextmanager
def _keeper(
    cfg: KeeperConfig, *, can_send: bool, metrics: Metrics | None = None
) -> Iterator[Keeper]:
    """The configured keeper, closed when the command is done with it: its store connections
    never outlive the command (a caller in the same process, as a test runner is, may go on to
    lock, replace or delete the ledger file)."""
    from keeper.wiring import build_keeper

    try:
        keeper = build_keeper(cfg, can_send=can_send, metrics=metrics)
    except KeeperError as err:
        fail(err)
    try:
        yield keeper
    finally:
        keeper.close()


def _mode(name: str) -> Any:
    from keeper.app import Mode

    return Mode(name)


def _tick(keeper: Keeper, mode: str, vault: str | None) -> list[TickResult]:
    from keeper.app import Mode

    try:
        return keeper.tick(Mode(mode), only=vault)
    except KeeperError as err:
        fail(err)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ printing


def results_table(results: list[TickResult], title: str) -> Table:
    t = Table(title=title)
    for col in (
        "vault",
        "block",
        "action",
        "verdict",
        "weights vs targets (bps)",
        "cost $",
        "tx / reason",
    ):
        t.add_column(col, overflow="fold")
    for r in results:
        w = " ".join(
            f"{s}:{a}/{b}" for s, a, b in zip(r.symbols, r.weights_bps, r.targets_bps, strict=True)
        )
        cost = f"{r.cost_usd:,.2f}" if r.cost_usd is not None else ""
        t.add_row(r.name, str(r.block), r.action, r.verdict, w, cost, r.tx_hash or r.reason)
    return t


def emit(results: list[TickResult], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in results], default=str, indent=2))
    else:
        console.print(results_table(results, title))


# ------------------------------------------------------------------ commands


@app.command(cls=GuardedCommand)
def check(
    config: ConfigOpt = DEFAULT_CONFIG,
    network: NetworkOpt = None,
    vault: VaultOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One dry tick: snapshot, decision and plan. Sends nothing."""
    cfg = _load(config, network)
    with _keeper(cfg, can_send=False) as keeper:
        results = _tick(keeper, "check", vault)
    emit(results, as_json, "keeper check (dry)")


@app.command(cls=GuardedCommand)
def simulate(
    config: ConfigOpt = DEFAULT_CONFIG,
    network: NetworkOpt = None,
    vault: VaultOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """`check` plus the fork simulation of every plan. Sends nothing."""
    cfg = _load(config, network)
    with _keeper(cfg, can_send=False) as keeper:
        results = _tick(keeper, "simulate", vault)
    emit(results, as_json, "keeper simulate")


@app.command(cls=GuardedCommand)
def rebalance(
    config: ConfigOpt = DEFAULT_CONFIG,
    network: NetworkOpt = None,
    vault: VaultOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One tick that may send: plans and simulates, asks, then sends."""
    cfg = _load(config, network)
    with _keeper(cfg, can_send=True) as keeper:
        results = _simulate_then_send(keeper, vault, yes=yes, as_json=as_json)
    if results is None:
        return
    from keeper.runtime import expected

    emit(results, as_json, "keeper rebalance")
    failed = [r for r in results if r.verdict in FAILED_VERDICTS and not expected(r)]
    if failed:
        for r in failed:
            err_console.print(f"[bold red]error:[/] {r.name}: {redact(r.reason)}", highlight=False)
        raise typer.Exit(1)


def _simulate_then_send(
    keeper: Keeper, vault: str | None, *, yes: bool, as_json: bool
) -> list[TickResult] | None:
    """The send tick's results, or None when nothing was worth sending."""
    try:
        keeper.recover()  # a transaction a previous run left pending is resolved, never resent
    except KeeperError as err:
        fail(err)
    planned = _tick(keeper, "simulate", vault)
    if not as_json:
        console.print(results_table(planned, "plan (simulated)"))
    if not any(r.verdict == "simulated" for r in planned):
        emit(planned, as_json, "nothing to send") if as_json else console.print("nothing to send")
        return None
    if not yes and not typer.confirm("send these transactions?", default=False):
        raise typer.Exit(1)
    keeper.last_block = None  # the send tick takes a fresh snapshot at a newer block
    return _tick(keeper, "send", vault)


@app.command(cls=GuardedCommand)
def status(
    config: ConfigOpt = DEFAULT_CONFIG, network: NetworkOpt = None, as_json: JsonOpt = False
) -> None:
    """Weights against targets and bands, collateral, pending txs and recent decisions."""
    from keeper.status import gather_status, print_status

    cfg = _load(config, network)
    try:
        st = gather_status(cfg)
    except KeeperError as err:
        fail(err)
    if as_json:
        typer.echo(json.dumps(st, default=str, indent=2))
    else:
        print_status(console, st)


@app.command(cls=GuardedCommand)
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    network: NetworkOpt = None,
    dry: Annotated[bool, typer.Option("--dry", help="simulate only, never send")] = False,
) -> None:
    """Start the scheduler (one job per vault) until SIGINT/SIGTERM."""
    from keeper.metrics import Metrics
    from keeper.runtime import Runtime

    cfg = _load(config, network)
    metrics = Metrics()
    with _keeper(cfg, can_send=not dry, metrics=metrics) as keeper:
        if cfg.metrics_port:
            metrics.serve(cfg.metrics_port)
        rt = Runtime(
            cfg,
            keeper,
            _mode("simulate" if dry else "send"),
            on_result=lambda r: console.print(_line(r)),
        )
        console.print(
            f"keeper running on {cfg.network.name} for {len(cfg.vaults)} vault(s); Ctrl-C stops"
        )
        rt.run_forever()  # returns once the tick in flight is recorded


def _line(r: TickResult) -> str:
    tail = r.tx_hash or r.reason
    return (
        f"[{time.strftime('%H:%M:%S')}] {r.name} block {r.block}: {r.action} -> {r.verdict}: {tail}"
    )


register_backtest(app)
register_replay(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 (outside any command: one line, logged)
        from keeper.cli_errors import report

        sys.exit(report("keeper", {}, err))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
