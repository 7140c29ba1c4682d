"""`keeper replay` end to end on the shipped June 2022 slice (no ../shared needed): the live
keeper on its own anvil and local market, beside the backtester on the same hours.

The differential test: 72 real hours across the June 13 crash with `preventative` and with
`band` at their defaults, where both trade. The live keeper and the backtester must take the
same action in at least 95% of the hours, and the cost model's gas must be within 10% of the gas
the rebalances really used. Then every policy runs through the live pipeline (calendar and
threshold on shorter windows), and the CLI's `--json`."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import keeper.demo as demo_mod
import keeper.replay.run as run_mod
from keeper.cli import app
from keeper.replay.output import RichView
from keeper.replay.run import ReplayReport, ReplaySettings, run_replay
from tests.e2e.conftest import local_config

pytestmark = pytest.mark.chain
JSON_KEYS = {"hours", "rebalances_sent", "gas_used_per_rebalance", "model_gas_per_rebalance",
             "action_agreement_pct", "hours_outside_outer_band", "cost_usd"}
CRASH = "2022-06-12 00:00:00"



@pytest.fixture
def replay_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for mod in (demo_mod, run_mod):  # deployments and state go to tmp
        monkeypatch.setattr(mod, "project_root", lambda: tmp_path)
    cfg = tmp_path / "networks.yaml"
    cfg.write_text(local_config("${LOCAL_RPC:-http://127.0.0.1:1}", tmp_path, tmp_path / "state",
                                policy="preventative"))
    return cfg


def _replay(cfg: Path, policy: str, params: dict[str, Any], start: str, hours: int
            ) -> tuple[ReplayReport, str]:
    out = StringIO()
    state = cfg.parent / "state"
    settings = ReplaySettings(config=cfg, start=start, hours=hours, policy=policy,
                              params=params, state_dir=state)
    report = run_replay(settings, RichView(Console(file=out, width=240), "full"))
    return report, out.getvalue()


def _check_rows(report: ReplayReport, hours: int) -> None:
    assert len(report.rows) == hours
    for row in report.rows:
        assert row.live.result.reason and row.bt_reason  # every hour says why, on both sides
        assert row.agree or "backtest" in (row.why or "")  # a disagreement names both sides


@pytest.mark.parametrize("policy", ["preventative", "band"])
def test_replay_of_june_2022_agrees_with_the_backtest(replay_cfg: Path, policy: str) -> None:
    report, text = _replay(replay_cfg, policy, {}, CRASH, 72)
    s = report.summary
    assert set(s) >= JSON_KEYS and s["hours"] == 72
    assert s["rebalances_sent"] >= 1 and report.twin.metrics["n_trades"] >= 1  # both trade
    assert s["action_agreement_pct"] >= 95.0, s["disagreements"]
    measured, modelled = s["gas_used_per_rebalance"], s["model_gas_per_rebalance"]
    assert abs(modelled - measured) <= 0.10 * measured, (measured, modelled)
    assert s["cost_usd"]["gas"] > 0 and s["cost_usd"]["fees"] > 0
    _check_rows(report, 72)
    assert text.count("      tx 0x") == s["rebalances_sent"]  # a line per transaction
    png = Path(s["plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert json.loads((replay_cfg.parent / "state" / "replay.json").read_text())["hours"] == 72
    assert "Traceback" not in text


def test_threshold_runs_live_and_agrees(replay_cfg: Path) -> None:
    report, _ = _replay(replay_cfg, "threshold", {"width_bps": 300}, CRASH, 48)
    assert report.summary["rebalances_sent"] >= 1
    assert report.summary["action_agreement_pct"] >= 95.0
    _check_rows(report, 48)


def test_calendar_runs_live_and_every_disagreement_is_explained(replay_cfg: Path) -> None:
    report, text = _replay(replay_cfg, "calendar", {"period_h": 8}, "2022-06-13 00:00:00", 24)
    assert report.summary["rebalances_sent"] >= 1
    _check_rows(report, 24)
    for row in report.rows:
        if not row.agree:  # the vault's inner-band guard, or the drift after it
            assert "NothingToRebalance" in (row.why or "") or "weights differ" in (row.why or "")
            assert f"differs from the backtest: {row.why}" in text


def test_cli_replay_json_has_the_summary_keys(replay_cfg: Path) -> None:
    out = CliRunner().invoke(app, ["replay", "--config", str(replay_cfg), "--hours", "3",
                                   "--policy", "band", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert set(s) >= JSON_KEYS and s["hours"] == 3 and s["action_agreement_pct"] == 100.0


def test_cli_replay_names_a_bad_window_in_one_line(replay_cfg: Path) -> None:
    out = CliRunner().invoke(app, ["replay", "--config", str(replay_cfg), "--start",
                                   "2022-05-03 00:00:00", "--hours", "3"])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert "the forecast fits on at least 720" in out.output
