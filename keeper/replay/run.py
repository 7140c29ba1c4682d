"""Run a replay: the window, the live world and its twin, hour by hour, then the summary and the
PNG. `keeper replay` and `keeper demo` both call `run_replay`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from keeper.config import PolicyConfig
from keeper.metrics import setup_logging
from keeper.paths import project_root
from keeper.replay.compare import HourRow, compare_hour, summary
from keeper.replay.live import LiveWorld, open_world, play_hour, read_vault
from keeper.replay.twin import TwinRun, mirror_spec, run_twin
from keeper.replay.window import DEFAULT_START, Window, load_window

TOKENS = ("WETH", "WBTC", "LINK", "USDC")  # the local market's basket, in the vault's order
THRESHOLD = "threshold"  # the classic rule the summary compares with


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySettings:
    config: Path = Path("networks.yaml")
    prices: Path | None = None  # default: the shipped June 2022 slice
    gas: tuple[Path, ...] = ()
    start: str = DEFAULT_START
    hours: int = 72
    policy: str | None = None  # default: the config's first vault's policy
    params: dict[str, Any] = field(default_factory=dict)
    nav_usd: int = 1_000_000
    port: int | None = None  # default: a free port
    state_dir: Path | None = None  # default: state/ in the checkout
    plot: Path | None = None  # default: <state_dir>/replay.png
    summary_json: Path | None = None  # default: <state_dir>/replay.json


class ReplayView(Protocol):
    """Where a replay reports as it goes (rich lines, or nothing for --json)."""

    def say(self, line: str) -> None: ...

    def begin(self, info: dict[str, Any]) -> None: ...

    def hour(self, row: HourRow) -> None: ...

    def end(self, summary: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    rows: list[HourRow]
    summary: dict[str, Any]
    twin: TwinRun
    threshold: TwinRun


def run_replay(s: ReplaySettings, view: ReplayView) -> ReplayReport:
    state_dir = s.state_dir or project_root() / "state"
    win = load_window(s.prices, list(s.gas) or None, s.start, s.hours, TOKENS)
    policy = PolicyConfig(name=s.policy, params=s.params) if s.policy else None
    world = open_world(win, s.config, state_dir, nav_usd=s.nav_usd, port=s.port, policy=policy,
                       say=view.say)
    setup_logging(world.cfg.log_format, level=logging.WARNING)  # the replay prints its own lines
    try:
        report = _run(s, win, world, view)
    finally:
        world.close()
    plot_path = s.plot or state_dir / "replay.png"
    from keeper.replay.plot import plot_replay

    plot_replay(report, win, plot_path)
    report.summary["plot"] = str(plot_path)
    json_path = s.summary_json or state_dir / "replay.json"
    json_path.write_text(json.dumps(report.summary, indent=2, default=str) + "\n")
    view.end(report.summary)
    return report


def _run(s: ReplaySettings, win: Window, world: LiveWorld, view: ReplayView) -> ReplayReport:
    vcfg = world.cfg.vaults[0]
    model = world.keeper.cost_models[vcfg.name]
    spec = mirror_spec(read_vault(world.w3, world.market, world.vault), model)
    vol_model = world.cfg.forecast.vol_model
    twin = run_twin(win, spec, vcfg.policy.name, dict(vcfg.policy.params), vol_model)
    threshold = run_twin(win, spec, THRESHOLD, {}, vol_model)
    view.begin(_info(s, win, world, spec.nav_usd))
    rows = []
    for k, t in enumerate(win.rows):
        row = compare_hour(k, play_hour(world, win, t), twin)
        rows.append(row)
        view.hour(row)
    out = summary(rows, twin, threshold, model)
    out = {"policy": vcfg.policy.name, "params": dict(vcfg.policy.params),
           "start": s.start, "nav_usd": spec.nav_usd, **out, "cost_model": world.notes}
    return ReplayReport(rows=rows, summary=out, twin=twin, threshold=threshold)


def _info(s: ReplaySettings, win: Window, world: LiveWorld, nav: float) -> dict[str, Any]:
    v = world.cfg.vaults[0]
    return {
        "policy": v.policy.name, "params": dict(v.policy.params), "window": win.source,
        "hours": win.hours, "nav_usd": nav, "vault": world.vault, "tokens": world.tokens,
        "targets": {a.symbol: a.target_bps for a in v.assets},
        "inner_bps": v.bands.inner_bps, "outer_bps": v.bands.outer_bps,
        "decimals": {sym: t.decimals for sym, t in world.market.tokens.items()},
        "cost_model": world.notes, "model": world.keeper.cost_models[v.name],
    }
