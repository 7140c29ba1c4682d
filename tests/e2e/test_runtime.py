"""The scheduler: a persistent job per vault, no overlapping ticks, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keeper.app import Mode
from keeper.config import load_config
from keeper.models import TickResult
from keeper.runtime import Runtime
from keeper.wiring import build_keeper

pytestmark = pytest.mark.chain


def _ticks(ledger: Path) -> int:
    """Recorded ticks; 0 while the keeper has created the file but not yet its schema."""
    with sqlite3.connect(ledger) as c:
        exists = c.execute("SELECT 1 FROM sqlite_master WHERE name = 'ticks'").fetchone()
        return int(c.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]) if exists else 0


def _wait(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_jobs_persist_and_ticks_never_overlap(keeper_env) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(keeper_env.config)
    keeper = build_keeper(cfg, can_send=False)
    inside, overlaps = threading.Event(), []
    original = keeper.tick

    def slow_tick(mode: Mode, only: str | None = None) -> list[TickResult]:
        if inside.is_set():
            overlaps.append(time.time())
        inside.set()
        try:
            time.sleep(0.3)  # longer than the 0.05 s interval: the scheduler must not overlap
            return original(mode, only)
        finally:
            inside.clear()

    keeper.tick = slow_tick  # type: ignore[method-assign]
    rt = Runtime(cfg, keeper, Mode.CHECK, runtime_id="t1", interval_override_s=0.05)
    rt.start()
    assert _wait(lambda: _ticks(keeper_env.ledger) >= 3)
    rt.stop()
    assert overlaps == []
    jobs = keeper_env.ledger.parent / "jobs.sqlite"
    with sqlite3.connect(jobs) as c:
        assert [r[0] for r in c.execute("SELECT id FROM apscheduler_jobs")] == ["tick:main"]
    rt2 = Runtime(cfg, keeper, Mode.CHECK, runtime_id="t2")
    rt2.scheduler.start(paused=True)  # a restarted process loads the stored jobs
    try:
        assert [j.id for j in rt2.scheduler.get_jobs()] == ["tick:main"]
    finally:
        rt2.scheduler.shutdown(wait=False)


def test_run_stops_cleanly_on_sigterm_after_recording_the_tick(keeper_env) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keeper.cli", "run", "--dry", "--config", str(keeper_env.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        assert _wait(lambda: keeper_env.ledger.exists() and _ticks(keeper_env.ledger) >= 1, 60)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "finishing the tick in flight" in out
    assert _ticks(keeper_env.ledger) >= 1
