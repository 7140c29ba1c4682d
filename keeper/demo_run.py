"""`keeper demo`: a short replay with friendly defaults.

Seventy-two real hours of the June 2022 crash (prices and gas shipped in keeper/data), a $1M vault
on the local market, the policy of networks.yaml's vault, and the backtester and the threshold
rule on the same hours. The picture goes to state/demo.png and the summary to state/demo.json.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from keeper.paths import project_root
from keeper.replay.output import RichView
from keeper.replay.run import ReplayReport, ReplaySettings, run_replay
from keeper.replay.window import DEFAULT_START

DEMO_HOURS = 72


def demo_settings(config: Path, *, hours: int = DEMO_HOURS, start: str | None = None,
                  policy: str | None = None, nav_usd: int = 1_000_000, port: int | None = None,
                  state_dir: Path | None = None) -> ReplaySettings:
    state = state_dir or project_root() / "state"
    return ReplaySettings(config=config, start=start or DEFAULT_START, hours=hours,
                          policy=policy, nav_usd=nav_usd, port=port, state_dir=state,
                          plot=state / "demo.png", summary_json=state / "demo.json")


def run_demo(settings: ReplaySettings, console: Console, mode: str = "full") -> ReplayReport:
    return run_replay(settings, RichView(console, mode, "demo"))
