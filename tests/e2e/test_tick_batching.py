"""RPC round trips per tick do not depend on the number of vaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

from keeper.app import Keeper, KeeperDeps, Mode
from keeper.config import load_config
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.localnet.deploy import LocalMarket, write_deployments
from keeper.localnet.market import move_market
from keeper.localnet.vault import VaultSetup, deploy_vault, seed_basket
from keeper.wiring import policies_for
from tests.e2e.conftest import make_keystore, write_config

pytestmark = pytest.mark.chain


class CountingProvider(HTTPProvider):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.requests = 0

    def make_request(self, method: Any, params: Any) -> Any:
        self.requests += 1
        return super().make_request(method, params)

    def make_batch_request(self, reqs: Any) -> Any:
        self.requests += 1  # one HTTP round trip for the whole batch
        return super().make_batch_request(reqs)


def _keeper(
    tmp: Path, w3: Web3, market: LocalMarket, anvil_url: str, n: int
) -> tuple[Keeper, CountingProvider]:
    acc = w3.eth.accounts
    keeper = make_keystore(tmp)
    for i in range(n):
        vault = deploy_vault(
            w3, market, admin=acc[0], keeper=keeper, guardian=acc[2], setup=VaultSetup()
        )
        seed_basket(w3, market, vault, 100_000 * (i + 1))
        market = market.with_vault(f"v{i}", vault.address)
    write_deployments(market, tmp / "deployments.json")
    cfg = load_config(write_config(tmp, anvil_url, vaults=tuple(f"v{i}" for i in range(n))))
    provider = CountingProvider(anvil_url)
    counted = Web3(provider, middleware=[])
    deps = KeeperDeps(
        w3=counted,
        ledger=Ledger(tmp / "l.sqlite"),
        history=PriceHistory(tmp / "h.sqlite"),
        keeper_address=keeper,
        policies=policies_for(cfg),
    )
    return Keeper(cfg, deps), provider


@pytest.mark.parametrize("n", [1, 4])
def test_round_trips_per_tick_are_constant(
    n: int, w3: Web3, market: LocalMarket, anvil_url: str, tmp_path: Path
) -> None:
    keeper, provider = _keeper(tmp_path, w3, market, anvil_url, n)
    move_market(w3, market, "WETH", 3_000)  # every vault leaves its band and plans a rebalance
    provider.requests = 0
    results = keeper.tick(Mode.CHECK)
    assert [r.verdict for r in results] == ["planned"] * n
    assert provider.requests == 3  # snapshot multicall + quote multicall + gas-estimate batch
