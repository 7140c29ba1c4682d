"""Drive the demo: the world, the scheduler, the scripted market, and the summary."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from keeper.app import Mode
from keeper.demo import (
    DemoSettings,
    DemoStats,
    DemoWorld,
    advance_hour,
    build_world,
    hourly_returns_bps,
)
from keeper.metrics import setup_logging
from keeper.models import TickResult
from keeper.paths import project_root
from keeper.read import ReadTarget, read_snapshot
from keeper.runtime import Runtime
from keeper.wiring import build_keeper, load


def run_demo(s: DemoSettings, config: Path, console: Console) -> DemoStats:
    state_dir = s.state_dir or project_root() / "state"
    source, moves = hourly_returns_bps(s)
    world = build_world(s, state_dir, console.print)
    try:
        return _run(s, config, console, world, source, moves)
    finally:
        world.anvil.stop()


def _run(
    s: DemoSettings,
    config: Path,
    console: Console,
    world: DemoWorld,
    source: str,
    moves: list[dict[str, int]],
) -> DemoStats:
    os.environ["LOCAL_RPC"] = world.anvil.url
    cfg = load(config, "local")
    setup_logging(cfg.log_format, level=logging.WARNING)  # the demo prints its own lines
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # skipped overlaps are by design
    stats = DemoStats()
    keeper = build_keeper(cfg, can_send=True)

    def on_result(r: TickResult) -> None:
        stats.on_result(r)
        if r.verdict != "hold" or stats.steps % 12 == 0:
            console.print(_line(r))

    rt = Runtime(
        cfg,
        keeper,
        Mode.SEND,
        on_result=on_result,
        runtime_id="demo",
        interval_override_s=max(s.step_s / 2, 0.05),
    )
    console.print(
        f"market: {source}; {len(moves)} hours; scheduler ticking every "
        f"{rt.interval_override_s:.2f} s"
    )
    rt.start()
    try:
        for hour in moves:
            stats.outside_outer += _outside(world, cfg)
            with rt.lock:  # no tick sees a half-moved market
                advance_hour(world, hour)
            stats.steps += 1
            time.sleep(s.step_s)
    finally:
        rt.stop()
    _summary(console, stats, keeper.deps.ledger, cfg.network.chain_id)
    return stats


def _outside(world: DemoWorld, cfg: object) -> int:
    symbols = {t.address.lower(): sym for sym, t in world.market.tokens.items()}
    snap = read_snapshot(
        world.w3,
        world.market.multicall3,
        [ReadTarget(address=world.vault, symbols=symbols)],
        chain_id=31337,
    )
    return int(any(a.outside_outer for a in snap.vaults[0].assets))


def _line(r: TickResult) -> str:
    w = " ".join(f"{sym}:{a}" for sym, a in zip(r.symbols, r.weights_bps, strict=True))
    tail = f"tx {r.tx_hash}" if r.tx_hash else r.reason
    cost = f" cost ${r.cost_usd:,.2f}" if r.cost_usd is not None else ""
    return f"block {r.block} [{w}] {r.action} -> {r.verdict}{cost}: {tail}"


def _summary(console: Console, stats: DemoStats, ledger: object, chain_id: int) -> None:
    t = Table(title="demo summary")
    t.add_column("metric")
    t.add_column("value")
    pct = 100.0 * stats.outside_outer / max(stats.steps, 1)
    for k, v in (
        ("simulated hours", stats.steps),
        ("rebalances sent", stats.rebalances),
        ("gas used by rebalances", f"{stats.gas_used:,}"),
        ("ticks held", stats.holds),
        ("rejected / failed", stats.rejected),
        ("hours outside the outer band", f"{stats.outside_outer} ({pct:.1f}%)"),
    ):
        t.add_row(k, str(v))
    console.print(t)
