"""docs/alerts.yml and docs/grafana-dashboard.json read only metrics the keeper exports, and
cover what an operator must be paged or ticketed for."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from keeper.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
_NAME = re.compile(r"\bkeeper_[a-z_]+")


def _exported() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
    names.update(f"{n}_bucket" for n in list(names))
    names.update(f"{n}_total" for n in list(names))
    return names


def test_alert_rules_read_exported_metrics_and_cover_the_operator_cases() -> None:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    exported = _exported()
    for rule in rules:
        used = set(_NAME.findall(rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"]
    names = {r["alert"] for r in rules}
    assert {
        "KeeperVaultHalted",
        "KeeperPendingTxOld",
        "KeeperFeeCapReached",
        "KeeperFeedStale",
        "KeeperRpcLagging",
        "KeeperLeaseLost",
    } <= names


def test_dashboard_panels_read_exported_metrics() -> None:
    dash = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exported = _exported()
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in _NAME.findall(e)}
    assert used and used <= exported, used - exported
    assert len(dash["panels"]) >= 12
