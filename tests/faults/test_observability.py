"""What an operator sees: the Prometheus endpoint (replacements, sends, decisions, pending age)
and one JSON object per log line, read the way a scraper and a log shipper read them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from keeper.app import Mode
from keeper.cli import app
from keeper.metrics import Metrics, setup_logging
from tests.faults.conftest import ChainCtl, Kit, push_out_of_band

pytestmark = pytest.mark.chain


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_metrics_endpoint_counts_replacements_and_logs_are_json_lines(
    kit: Kit, chain: ChainCtl, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Metrics()
    server = metrics.serve(0)
    setup_logging("json")
    push_out_of_band(kit.env)

    def before(call: int) -> None:
        if call == 1:
            (row,) = keeper.deps.ledger.pending_txs()
            chain.stick(row.gas_limit)
        if call == 4:
            chain.unstick()

    keeper = kit.keeper(waiter=chain.waiter(before), replace_after_blocks=1, metrics=metrics)
    chain.automine(False)
    try:
        (r,) = keeper.tick(Mode.SEND)
        got = _scrape(server.server_port)
    finally:
        server.shutdown()
    assert r.verdict == "sent", r.reason
    main = (("vault", "main"),)
    attempts = len(keeper.deps.ledger.get_tx(1).attempts)
    assert attempts >= 3
    assert got[("keeper_replacements_total", main)] == attempts - 1
    assert got[("keeper_sends_total", main)] == 1
    assert got[("keeper_decisions_total", (("action", "rebalance"), ("vault", "main")))] == 1
    assert got[("keeper_pending_tx_age_blocks", main)] == 0  # final: back to 0
    assert got[("keeper_band_deviation_bps", main)] > 500
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    records: list[dict[str, Any]] = [json.loads(ln) for ln in lines]  # every line is JSON
    assert records and all({"ts", "level", "logger", "msg"} <= set(x) for x in records)
    (tick,) = [x for x in records if x.get("decision") == "rebalance"]
    assert tick["vault"] == kit.env.vault and tick["block"] == str(r.block)
    assert tick["logger"] == "keeper.app" and tick["level"] == "INFO"


def test_rebalance_yes_exits_1_when_the_send_failed(kit: Kit, chain: ChainCtl) -> None:
    chain.rpc("anvil_setBalance", kit.env.keeper, "0x0")  # the send cannot pay for gas
    push_out_of_band(kit.env)
    out = CliRunner().invoke(app, ["rebalance", "--yes", "--config", str(kit.env.config)])
    assert out.exit_code == 1, out.output
    assert "cannot pay for gas" in " ".join(out.stderr.split())
    assert chain.sent_count(kit.env.keeper) == 0
