"""networks.yaml's `mainnet-fork` network, as committed, against the mainnet replica: the offline
half of docs/mainnet-fork.md. An anvil with chain id 1 gets the market at its canonical mainnet
addresses and a funded vault from `ape run deploy_local --mainnet-addresses`, exactly as the
recipe says; then `keeper check`, `keeper simulate` and `keeper rebalance --yes` run with the
network's own addresses. A wrong address in the config (SwapRouter02 for SwapRouter, whose
exactInput struct differs) shows at `keeper check`, not in production."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner
from web3 import Web3

from keeper.chain.anvil import Anvil
from keeper.cli import app
from keeper.config import KeeperConfig, load_config
from keeper.localnet import chain, mainnet
from keeper.localnet.deploy import LocalMarket, read_deployments
from keeper.localnet.market import move_market
from keeper.read import ReadTarget, read_snapshot

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
# Mainnet's Uniswap v3 pools (as listed by Uniswap's info site and Etherscan): the replica's
# factory creates them at these addresses because the factory, the tokens and the pool code are
# mainnet's.
MAINNET_POOLS = {
    "WETH/USDC/500": "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640",
    "WETH/USDC/3000": "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8",
    "WBTC/USDC/3000": "0x99ac8cA7087fA4A2A1FB6357269965A2014ABc35",
    "WBTC/WETH/3000": "0xCBCdF9626bC03E24f779434178A73a0B4bad62eD",
    "LINK/USDC/3000": "0xFAD57d2039C21811C8F2B5D5B65308aa99D31559",
    "LINK/WETH/3000": "0xa6Cc3C2531FdaA6Ae1A3CA84c2855806728693e8",
}
# Aave v3 Ethereum's aTokens and variable debt tokens (its 2023-10-31 snapshot, docs/lending.md)
MAINNET_A_TOKENS = {
    "WETH": "0x4d5F47FA6A74757f35C14fD3a6Ef8E3C9BC514E8",
    "WBTC": "0x5Ee5bf7ae06D1Be5997A1A72006FE6C607eC6DE8",
    "USDC": "0x98C23E9d8f34FEFb1B7BD6a91B7FF122F4e16F5c",
    "LINK": "0x5E8C8A7243651DB1384C0dDfDbE39761E8e7E51a",
}
SWAP_ROUTER_02 = "0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45"


@dataclass(frozen=True)
class Replica:
    w3: Web3
    url: str
    dir: Path
    market: LocalMarket

    @property
    def config(self) -> Path:
        return self.dir / "networks.yaml"

    def load(self) -> KeeperConfig:
        return load_config(self.config, "mainnet-fork")


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    tmp = tmp_path_factory.mktemp("mainnet-fork")
    shutil.copy(ROOT / "networks.yaml", tmp / "networks.yaml")  # the committed file, unchanged
    with Anvil(chain_id=1, extra_args=("--base-fee", "1000000000")) as node:
        ape = [str(Path(sys.executable).with_name("ape")), "run", "deploy_local"]
        deployments = tmp / "deployments" / "mainnet-fork.json"
        args = ["--mainnet-addresses", "--state-dir", str(tmp / "state"),
                "--deployments", str(deployments), "--network", node.url]
        out = subprocess.run([*ape, *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, check=False, env=dict(os.environ))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "local market deployed on chain 1" in out.stdout
        w3 = Web3(Web3.HTTPProvider(node.url, cache_allowed_requests=True))
        old = os.environ.get("MAINNET_FORK_RPC")
        os.environ["MAINNET_FORK_RPC"] = node.url  # the network's own ${MAINNET_FORK_RPC:-...}
        try:
            yield Replica(w3, node.url, tmp, read_deployments(deployments))
        finally:
            os.environ.pop("MAINNET_FORK_RPC") if old is None else os.environ.update(
                MAINNET_FORK_RPC=old
            )


def test_the_network_config_is_committed_unchanged(replica: Replica) -> None:
    assert replica.config.read_bytes() == (ROOT / "networks.yaml").read_bytes()


def test_every_address_of_the_mainnet_fork_network_holds_its_contract(replica: Replica) -> None:
    cfg, m, w3 = replica.load(), replica.market, replica.w3
    c = cfg.contracts
    assert cfg.network.chain_id == w3.eth.chain_id == 1
    # the network's explicit addresses are the ones the replica placed, and hold code
    assert (c.multicall3, c.routers, c.quoter, c.lending_pool) == (
        m.multicall3, (m.router,), m.quoter, m.lending_pool
    )
    assert c.feeds == {s: Web3.to_checksum_address(a) for s, a in mainnet.FEED_ADDRESSES.items()}
    for address in (c.multicall3, *c.routers, c.quoter, c.lending_pool, *c.feeds.values()):
        assert len(w3.eth.get_code(Web3.to_checksum_address(address))) > 0, address
    # tokens, pools and Aave's tokens sit where they are on mainnet
    assert {s: t.address for s, t in c.tokens.items()} == mainnet.TOKEN_ADDRESSES
    assert {s: t.decimals for s, t in c.tokens.items()} == {
        "USDC": 6, "WBTC": 8, "WETH": 18, "LINK": 18
    }
    assert dict(c.pools) == MAINNET_POOLS
    assert m.aave is not None and m.aave.a_tokens == MAINNET_A_TOKENS
    provider = chain.at(w3, "PoolAddressesProvider", mainnet.AAVE_PROVIDER).functions
    assert provider.getPool().call() == c.lending_pool
    # the router is SwapRouter (exactInputSingle's struct carries a deadline), not SwapRouter02
    router = chain.at(w3, "SwapRouter", c.routers[0]).functions
    assert router.factory().call() == mainnet.UNISWAP_FACTORY
    assert len(w3.eth.get_code(Web3.to_checksum_address(SWAP_ROUTER_02))) == 0


def test_keeper_check_simulate_and_rebalance_with_the_networks_addresses(
    replica: Replica,
) -> None:
    w3, m = replica.w3, replica.market
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        move_market(w3, m, "WETH", 3_000)  # WETH +30% in its mainnet pools and its feed
        before = _state(replica).max_abs_deviation_bps
        cfg = ["--config", str(replica.config), "--network", "mainnet-fork"]
        out = runner.invoke(app, ["check", "--json", *cfg])
        assert out.exit_code == 0, out.output
        (r,) = json.loads(out.stdout)
        assert (r["action"], r["verdict"]) == ("rebalance", "planned"), r
        out = runner.invoke(app, ["simulate", "--json", *cfg])
        (r,) = json.loads(out.stdout)
        assert r["verdict"] == "simulated" and r["details"]["simulation"]["ok"], r
        out = runner.invoke(app, ["rebalance", "--yes", *cfg])
        assert out.exit_code == 0, out.output
        with sqlite3.connect(replica.load().ledger.path) as db:
            rows = db.execute("SELECT status, purpose, receipt_status FROM txs").fetchall()
        assert rows == [("confirmed", "rebalance", 1)]
        after = _state(replica)  # the preventative policy trades back into the band
        assert not any(a.outside_outer for a in after.assets)
        assert after.max_abs_deviation_bps < before, (before, after)
    finally:
        w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


def _state(replica: Replica):  # type: ignore[no-untyped-def]
    cfg = replica.load()
    symbols = {t.address.lower(): s for s, t in cfg.contracts.tokens.items()}
    target = ReadTarget(address=replica.market.vaults["main"], symbols=symbols)
    return read_snapshot(replica.w3, cfg.contracts.multicall3, [target], chain_id=1).vaults[0]


def test_swaprouter02_in_the_config_shows_at_keeper_check(replica: Replica) -> None:
    """SwapRouter02's exactInput has no deadline in its struct; a config naming it is refused
    by the vault's router whitelist at the planner's gas measurement, so nothing is planned."""
    w3, m = replica.w3, replica.market
    wrong = replica.dir / "wrong-router.yaml"
    wrong.write_text(replica.config.read_text().replace(mainnet.SWAP_ROUTER, SWAP_ROUTER_02))
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        move_market(w3, m, "WETH", 3_000)
        out = runner.invoke(app, ["check", "--json", "--config", str(wrong),
                                  "--network", "mainnet-fork"])
        assert out.exit_code == 0, out.output
        (r,) = json.loads(out.stdout)
        assert r["verdict"] == "hold" and "RouterNotAllowed" in r["reason"], r
    finally:
        w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
