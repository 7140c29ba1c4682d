"""`make demo` twice in one checkout: each run starts a new chain, so the last run's ledger,
history and job store are archived (never deleted) instead of refusing the new vault's epoch 0
("epoch 0 ... was already executed")."""

from __future__ import annotations

import logging
import sqlite3
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

import keeper.demo as demo_mod
from keeper.chain.anvil import free_port
from keeper.demo import archive_previous_run
from keeper.demo_run import demo_settings, run_demo
from tests.e2e.conftest import local_config


def test_archive_moves_only_the_stores_and_keeps_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert archive_previous_run(state) is None  # nothing yet
    state.mkdir()
    for name in ("keeper.sqlite", "keeper.sqlite-wal", "jobs.sqlite", "keeper-history.sqlite"):
        (state / name).write_text(name)
    (state / "keeper-keystore.json").write_text("{}")
    dest = archive_previous_run(state)
    assert dest is not None and dest.parent == state / "archive"
    assert sorted(p.name for p in dest.iterdir()) == [
        "jobs.sqlite", "keeper-history.sqlite", "keeper.sqlite", "keeper.sqlite-wal"]
    assert (dest / "keeper.sqlite").read_text() == "keeper.sqlite"  # moved whole, not reset
    assert sorted(p.name for p in state.iterdir()) == ["archive", "keeper-keystore.json"]
    assert archive_previous_run(state) is None


def _run_twice(tmp_path: Path, state: Path) -> list[str]:
    outputs = []
    for _ in range(2):
        port = free_port()
        cfg = tmp_path / "networks.yaml"
        cfg.write_text(local_config(f"http://127.0.0.1:{port}", tmp_path, state))
        out = StringIO()
        report = run_demo(demo_settings(cfg, hours=2, port=port, state_dir=state),
                          Console(file=out, width=200))
        assert len(report.rows) == 2
        outputs.append(out.getvalue())
    return outputs


@pytest.mark.chain
def test_a_second_demo_run_starts_with_a_fresh_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr(demo_mod, "project_root", lambda: tmp_path)  # deployments go to tmp
    try:
        outputs = _run_twice(tmp_path, state)
    finally:  # run_demo installs the keeper's log handlers; leave logging as other tests expect
        logging.getLogger("keeper").handlers[:] = []
        logging.getLogger("keeper").propagate = True
    assert "moved to" not in outputs[0]
    assert "previous run's ledger and history moved to" in outputs[1]
    (archived,) = (state / "archive").iterdir()
    with sqlite3.connect(archived / "keeper.sqlite") as old, \
            sqlite3.connect(state / "keeper.sqlite") as new:
        first_run = old.execute("SELECT count(*) FROM ticks").fetchone()[0]
        second_run = new.execute("SELECT min(id), count(*) FROM ticks").fetchone()
    assert first_run > 0 and second_run[0] == 1 and second_run[1] > 0  # a new ledger
