"""A leg too large for its pool's depth at the vault's oracle floor is re-quoted at a smaller
size; the rest of the rebalance is not refused with it (the soak's long runs out of band)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web3 import Web3

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


def test_a_thin_leg_is_shrunk_and_the_plan_still_simulates(
    w3: Web3, market: LocalMarket, anvil_url: str, tmp_path: Path, chain_snapshot: None
) -> None:
    acc = w3.eth.accounts
    keeper_addr = make_keystore(tmp_path)
    w3.provider.make_request("anvil_setBalance", [keeper_addr, hex(10**19)])  # type: ignore[arg-type]
    vault = deploy_vault(w3, market, admin=acc[0], keeper=keeper_addr, guardian=acc[2],
                         setup=VaultSetup(max_trade_e18=20_000_000 * 10**18))
    seed_basket(w3, market, vault, 40_000_000)
    write_deployments(market.with_vault("main", vault.address), tmp_path / "deployments.json")
    cfg = load_config(write_config(tmp_path, anvil_url))
    # LINK +60%: $2.2M of LINK to sell (5% over its band) against pools whose +-10% and +-60%
    # positions are behind the price: every full-size LINK leg quotes far under the oracle floor
    move_market(w3, market, "LINK", 6_000)
    keeper = Keeper(cfg, KeeperDeps(w3=w3, ledger=Ledger(tmp_path / "l.sqlite"),
                                    history=PriceHistory(tmp_path / "h.sqlite"),
                                    keeper_address=keeper_addr,
                                    policies=policies_for(cfg)))
    (r,) = keeper.tick(Mode.SIMULATE)
    legs, notes = r.details.get("legs", []), r.details.get("notes", [])
    assert r.verdict == "simulated", (r.reason, r.details)
    assert r.details["simulation"]["ok"] is True
    # the full-size LINK legs were re-quoted smaller, and two that share the LINK/USDC pool did
    # not both go in one transaction
    assert sum("re-quoted at" in n for n in notes) == 3, notes
    assert any("sharing a pool" in n for n in notes), notes
    assert legs and all(leg["sell"] == "LINK" for leg in legs)
    assert all(leg["notional_usd"] < 100_000 for leg in legs)
    # the trade moved LINK toward its target (it started at ~15.1%)
    post = r.details["simulation"]["post_weights_bps"]
    assert post[2] < r.weights_bps[2]
