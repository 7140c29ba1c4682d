"""The multi-keeper soak, short: 3 `keeper run` processes, one PostgreSQL store, 2 vaults, a
scripted hour-by-hour market with every fault kind (a keeper killed while it holds a lease, a
node down, a node lagging, a dropped send). No duplicate, no orphaned lease, no reverted send
by a losing keeper, and a dead keeper's lease taken over within 2 ticks. The full run and its
numbers: benchmarks/bench_multikeeper.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.bench_multikeeper import Settings, report, run

pytestmark = pytest.mark.chain


def test_three_keepers_on_one_store_never_double_send_and_take_over_a_dead_keeper(
    tmp_path: Path,
) -> None:
    settings = Settings(
        hours=8,
        step_s=2.5,
        shock_every=2,
        script=("kill", "node_down", None, "node_lagging", "dropped_send", None, None, None),
    )
    result, _world = run(settings, tmp_path)
    text = report(settings, result)
    assert result["duplicates"] == 0, text
    assert result["orphaned_leases"] == 0, text
    assert result["reverted_losing_keeper"] == 0, text
    assert result["left_pending"] == 0, text
    assert result["rebalances"] >= 2, text  # the shocks were acted on, faults or not
    assert result.get("kills_holding_a_lease", 0) >= 1, text
    assert result["takeovers"] >= 1 and result["takeover_max_ticks"] < 2, text
