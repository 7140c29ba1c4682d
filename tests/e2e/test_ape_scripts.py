"""The ape scripts an operator triggers by hand (`ape run deploy_local`, `ape run status`,
`ape run rebalance`), run as ape runs them, against their own anvil, with their options."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from keeper.chain.anvil import Anvil, free_port
from keeper.localnet.deploy import read_deployments
from keeper.localnet.market import move_market
from tests.e2e.conftest import local_config

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]
APE = [str(Path(sys.executable).with_name("ape")), "run"]
NETWORK = ["--network", "ethereum:local:foundry"]


@pytest.fixture
def node() -> Iterator[Anvil]:
    anvil = Anvil(port=free_port()).start()
    yield anvil
    anvil.stop()


def _ape(node: Anvil, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APE_FOUNDRY_HOST": node.url}
    return subprocess.run([*APE, *args, *NETWORK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_deploy_status_rebalance_scripts(node: Anvil, tmp_path: Path) -> None:
    state, deployments = tmp_path / "state", tmp_path / "deployments" / "local.json"
    cfg = tmp_path / "networks.yaml"
    cfg.write_text(local_config(node.url, tmp_path, state))

    out = _ape(node, "deploy_local", "--state-dir", str(state), "--deployments", str(deployments))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "local market deployed on chain 31337" in out.stdout
    assert (state / "keeper-keystore.json").exists()
    market = read_deployments(deployments)

    move_market(Web3(Web3.HTTPProvider(node.url)), market, "WETH", 3000)  # out of the outer band
    out = _ape(node, "status", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    (vault,) = json.loads(out.stdout[out.stdout.index("{"):])["vaults"]
    assert vault["address"].lower() == market.vaults["main"].lower()
    weth = next(a for a in vault["assets"] if a["symbol"] == "WETH")
    assert weth["weight_bps"] - weth["target_bps"] > weth["outer_bps"]

    out = _ape(node, "rebalance", "--config", str(cfg), "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    with sqlite3.connect(state / "keeper.sqlite") as db:
        rows = db.execute("SELECT purpose, status, receipt_status FROM txs").fetchall()
    assert rows == [("rebalance", "confirmed", 1)]
