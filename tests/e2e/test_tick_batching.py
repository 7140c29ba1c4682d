"""RPC round trips per tick, counted at the HTTP level through the keeper's real web3 stack
(failover provider, web3.py's middleware): a fixed number, whatever the number of vaults. A
round trip added anywhere in a tick fails these counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from benchmarks.latency_proxy import LatencyProxy
from keeper.app import Keeper, Mode
from keeper.localnet.deploy import LocalMarket, write_deployments
from keeper.localnet.market import move_market
from keeper.localnet.vault import VaultSetup, deploy_vault, seed_basket
from keeper.wiring import build_keeper, load
from tests.e2e.conftest import make_keystore, write_config

pytestmark = pytest.mark.chain


@pytest.fixture
def proxy(anvil_url: str) -> Iterator[LatencyProxy]:
    # 20 ms a request: requests sent in parallel surely overlap, and count as one round trip
    p = LatencyProxy(anvil_url, delay_s=0.02)
    yield p
    p.close()


def _keeper(tmp: Path, w3: Web3, market: LocalMarket, url: str, n: int) -> Keeper:
    acc = w3.eth.accounts
    keeper = make_keystore(tmp)
    for i in range(n):
        vault = deploy_vault(
            w3, market, admin=acc[0], keeper=keeper, guardian=acc[2], setup=VaultSetup()
        )
        seed_basket(w3, market, vault, 100_000 * (i + 1))
        market = market.with_vault(f"v{i}", vault.address)
    write_deployments(market, tmp / "deployments.json")
    cfg = load(write_config(tmp, url, vaults=tuple(f"v{i}" for i in range(n))))
    return build_keeper(cfg, can_send=False)


def _tick(keeper: Keeper, proxy: LatencyProxy, mode: Mode) -> tuple[list[str], int]:
    """The verdicts and the round trips in sequence of one tick."""
    proxy.reset()
    verdicts = [r.verdict for r in keeper.tick(mode)]
    assert "eth_chainId" not in proxy.methods.get("keeper", {}), proxy.methods
    return verdicts, proxy.rounds


@pytest.mark.parametrize("n", [1, 4])
def test_round_trips_per_tick_are_constant(
    n: int, w3: Web3, market: LocalMarket, proxy: LatencyProxy, tmp_path: Path
) -> None:
    keeper = _keeper(tmp_path, w3, market, proxy.url, n)
    # hold: the snapshot multicall (and the hour's gas sample in the same batch)
    assert _tick(keeper, proxy, Mode.CHECK) == (["hold"] * n, 1)
    move_market(w3, market, "WETH", 3_000)  # every vault leaves its band and plans a rebalance
    # act: snapshot multicall + quote multicall + gas-measurement batch
    assert _tick(keeper, proxy, Mode.CHECK) == (["planned"] * n, 3)
    # + every plan simulated in one eth_simulateV1 batch
    assert _tick(keeper, proxy, Mode.SIMULATE) == (["simulated"] * n, 4)
    assert keeper.simulator.last_path == "eth_simulateV1"


@pytest.mark.parametrize("n", [1, 4])
def test_the_fork_fallback_costs_two_round_trips(
    n: int, w3: Web3, market: LocalMarket, proxy: LatencyProxy, tmp_path: Path
) -> None:
    """On a node without eth_simulateV1 the first tick learns it from the node's answer (one
    round trip), and the fork then fetches its state in two: the access lists and the block,
    then the accounts and slots they name. Nothing is fetched one item at a time."""
    proxy.reject = frozenset({"eth_simulateV1"})
    keeper = _keeper(tmp_path, w3, market, proxy.url, n)
    move_market(w3, market, "WETH", 3_000)
    assert _tick(keeper, proxy, Mode.SIMULATE) == (["simulated"] * n, 3 + 1 + 2)
    assert keeper.simulator.last_path == "fork"
    fork = keeper.simulator.last_fork
    assert fork is not None and fork.prefetched > 0 and fork.cache.misses == 0
    assert proxy.methods["keeper"]["eth_simulateV1"] == n  # the probe: one batch
    # remembered: later ticks go straight to the fork
    assert _tick(keeper, proxy, Mode.SIMULATE) == (["simulated"] * n, 3 + 2)
    assert "eth_simulateV1" not in proxy.methods["keeper"]
