"""The keeper end to end on Hardhat Network (npm hardhat 2), the second node beside anvil: the
local deploy through hardhat_* methods (and `ape run deploy_local` on it), `keeper check`,
`keeper simulate` (an anvil fork of the Hardhat node) and `keeper rebalance --yes` with gas
from eth_estimateGas (Hardhat has no eth_createAccessList), and a reverted send named from
eth_call (Hardhat refuses the callTracer). The node runs on a free port of 127.0.0.1 for this
module only."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from web3 import Web3

from keeper.chain.contracts import encode_call
from keeper.config import load_config
from keeper.localnet.deploy import LocalMarket, deploy_market, read_deployments
from keeper.localnet.hardhat import Hardhat
from keeper.localnet.market import move_market
from keeper.localnet.node import DevNode
from keeper.send.types import TxRequest
from keeper.wiring import build_keeper
from tests.e2e.conftest import KeeperEnv, setup_keeper_env
from tests.e2e.test_keeper_cli import _weights
from tests.e2e.test_simulation import mined, planned_jobs, same_verdict, variants

pytestmark = pytest.mark.chain
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hardhat() -> Iterator[Hardhat]:
    node = Hardhat().start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def hh_market(hardhat: Hardhat) -> tuple[Web3, LocalMarket]:
    w3 = Web3(Web3.HTTPProvider(hardhat.url))
    return w3, deploy_market(w3, w3.eth.accounts[0])


@pytest.fixture
def hh_env(
    hardhat: Hardhat, hh_market: tuple[Web3, LocalMarket], tmp_path: Path
) -> Iterator[KeeperEnv]:
    w3, market = hh_market
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    yield setup_keeper_env(w3, market, hardhat.url, tmp_path)
    w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


def test_the_local_market_deploys_through_hardhat_methods(
    hh_market: tuple[Web3, LocalMarket],
) -> None:
    w3, market = hh_market
    node = DevNode(w3)
    assert node.prefix == "hardhat" and node.version.startswith("HardhatNetwork/2.")
    assert len(w3.eth.get_code(Web3.to_checksum_address(market.multicall3))) > 0  # setCode
    assert market.aave is not None and market.lending_pool == market.aave.pool


def test_check_simulate_and_rebalance_on_hardhat(hh_env: KeeperEnv) -> None:
    env = hh_env
    move_market(env.w3, env.market, "WETH", 3_000)  # +30%: WETH leaves its outer band
    cfg = ["--config", str(env.config)]
    out = runner.invoke(app_(), ["check", "--json", *cfg])
    assert out.exit_code == 0, out.output
    (planned,) = json.loads(out.stdout)
    assert (planned["action"], planned["verdict"]) == ("rebalance", "planned"), planned
    assert planned["details"]["gas_limit"] > 0  # measured with eth_estimateGas
    out = runner.invoke(app_(), ["simulate", "--json", *cfg])
    (simulated,) = json.loads(out.stdout)
    assert simulated["verdict"] == "simulated", simulated
    assert simulated["details"]["simulation"]["ok"] is True
    out = runner.invoke(app_(), ["rebalance", "--yes", *cfg])
    assert out.exit_code == 0, out.output
    assert "nothing to send" not in out.output
    for sym, (w, t, inner) in _weights(env).items():
        assert abs(w - t) <= inner, (sym, w, t)
    with sqlite3.connect(env.ledger) as db:
        rows = db.execute("SELECT status, purpose, receipt_status FROM txs").fetchall()
    assert rows == [("confirmed", "rebalance", 1)]


def test_simulation_on_hardhat_forks_it_and_gives_the_mined_verdict(hh_env: KeeperEnv) -> None:
    """Hardhat has neither eth_simulateV1 nor eth_createAccessList: the plans run on an anvil
    fork of it, the first fork fetching state one item at a time, the second prefetching what
    the first needed. Both give the verdict of the transaction mined on Hardhat itself."""
    env = hh_env
    move_market(env.w3, env.market, "WETH", 3_000)
    keeper = build_keeper(load_config(env.config), can_send=False)
    (job,), at = planned_jobs(keeper)
    assert keeper.simulator.last_path == "fork"
    cases = variants(job, at)
    names = ("as planned", "wrong epoch", "deadline passed", "out of gas", "gas budget 100k")
    jobs = [cases[n] for n in names]
    first = keeper.simulator.run(jobs, at)
    fork = keeper.simulator.last_fork
    assert fork is not None and fork.cache.misses == 0  # the planned tick's fork taught it
    for name, got in zip(names, first, strict=True):
        assert same_verdict(got, mined(env.w3, cases[name], at)), name
    assert first[0].ok and str(first[1].revert).startswith("BadEpoch(")


def test_a_reverted_send_is_named_from_eth_call_on_hardhat(hh_env: KeeperEnv) -> None:
    """A rebalance for a past epoch, sent without simulation at a fixed gas limit: it is mined
    with status 0 and the ledger names the vault's error, found by replaying it with eth_call."""
    env = hh_env
    cfg = load_config(env.config)
    keeper = build_keeper(cfg, can_send=True)
    assert keeper.deps.sender is not None
    deadline = env.w3.eth.get_block("latest")["timestamp"] + 600
    data = encode_call("RebalancingVault", "rebalance", ([], deadline, 7))
    req = TxRequest(to=env.vault, data=data, gas_limit=300_000, purpose="rebalance")
    result = keeper.deps.sender.send(req)
    assert not result.ok
    with sqlite3.connect(env.ledger) as db:
        (error,) = db.execute("SELECT error FROM txs").fetchone()
    assert "BadEpoch(7, 0)" in error, error


def test_ape_deploy_local_runs_on_hardhat(hardhat: Hardhat, tmp_path: Path) -> None:
    """`ape run deploy_local` on Hardhat: ape's node provider by URL (ape-foundry's provider
    accepts anvil only), the deploy through hardhat_* methods."""
    w3 = Web3(Web3.HTTPProvider(hardhat.url))
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    state, deployments = tmp_path / "state", tmp_path / "local.json"
    ape = [str(Path(sys.executable).with_name("ape")), "run", "deploy_local"]
    args = ["--state-dir", str(state), "--deployments", str(deployments)]
    try:
        out = subprocess.run(
            [*ape, *args, "--network", hardhat.url],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "local market deployed on chain 31337" in out.stdout
        market = read_deployments(deployments)
        assert len(w3.eth.get_code(Web3.to_checksum_address(market.vaults["main"]))) > 0
    finally:
        w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


def app_():  # type: ignore[no-untyped-def]
    from keeper.cli import app

    return app
