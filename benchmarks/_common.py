"""Shared benchmark helpers: a local stack with N vaults and a request-counting web3."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from eth_account import Account
from web3 import HTTPProvider, Web3

from keeper.app import Keeper, KeeperDeps
from keeper.config import load_config
from keeper.history import PriceHistory
from keeper.ledger import Ledger
from keeper.localnet.deploy import LocalMarket, deploy_market, write_deployments
from keeper.localnet.vault import VaultSetup, deploy_vault, seed_basket
from keeper.wiring import policies_for

RESULTS = Path(__file__).resolve().parent / "results"
PASS = "benchmark passphrase"


class CountingProvider(HTTPProvider):
    def __init__(self, url: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 60})
        self.requests = 0

    def make_request(self, method: Any, params: Any) -> Any:
        self.requests += 1
        return super().make_request(method, params)

    def make_batch_request(self, reqs: Any) -> Any:
        self.requests += 1
        return super().make_batch_request(reqs)


def shipped_policy() -> str:
    """The policy of the shipped networks.yaml's vault, as a one-line YAML mapping."""
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "networks.yaml").read_text())
    pol = shipped["vaults"][0]["policy"]
    return json.dumps({"name": pol["name"], "params": pol.get("params", {})})


def config_text(rpc: str, names: list[str], block_time_s: int = 1,
                policy: str = "{name: threshold, params: {}}") -> str:
    vaults = "".join(
        f"""
  - name: {n}
    from_deployments: {n}
    assets: [{{symbol: WETH, target_bps: 4000}}, {{symbol: WBTC, target_bps: 3000}},
             {{symbol: LINK, target_bps: 1000}}, {{symbol: USDC, target_bps: 2000}}]
    bands: {{inner_bps: 200, outer_bps: 500}}
    policy: {policy}"""
        for n in names
    )
    return f"""
networks:
  local:
    rpc_urls: ["{rpc}"]
    chain_id: 31337
    block_time_s: {block_time_s}
    deployments: deployments.json
vaults:{vaults}
gas: {{max_fee_gwei: 100, per_rebalance_budget_gwei: 50000000, replace_after_blocks: 3}}
account: {{keystore: keystore.json, passphrase_file: passphrase.txt}}
ledger: {{path: keeper.sqlite}}
metrics_port: 0
"""


def stack(
    w3: Web3, rpc: str, n_vaults: int, tmp: Path | None = None, block_time_s: int = 1,
    policy: str = "{name: threshold, params: {}}",
) -> tuple[LocalMarket, Path, str]:
    """Market, n seeded vaults, keystore and config in a temp dir: (market, config, keeper)."""
    tmp = tmp or Path(tempfile.mkdtemp(prefix="vk-bench-"))
    acc = w3.eth.accounts
    market = deploy_market(w3, acc[0])
    key = Account.create()
    (tmp / "keystore.json").write_text(json.dumps(Account.encrypt(key.key, PASS)))
    (tmp / "passphrase.txt").write_text(PASS)
    w3.provider.make_request("anvil_setBalance", [key.address, hex(10**20)])  # type: ignore[arg-type]
    for i in range(n_vaults):
        vault = deploy_vault(
            w3, market, admin=acc[0], keeper=key.address, guardian=acc[2], setup=VaultSetup()
        )
        seed_basket(w3, market, vault, 1_000_000)
        market = market.with_vault(f"v{i}", vault.address)
    write_deployments(market, tmp / "deployments.json")
    cfg = tmp / "networks.yaml"
    cfg.write_text(config_text(rpc, [f"v{i}" for i in range(n_vaults)], block_time_s, policy))
    return market, cfg, key.address


def counting_keeper(
    cfg_path: Path, rpc: str, keeper: str, names: list[str] | None = None
) -> tuple[Keeper, CountingProvider]:
    cfg = load_config(cfg_path)
    if names is not None:
        cfg = cfg.model_copy(update={"vaults": tuple(v for v in cfg.vaults if v.name in names)})
    provider = CountingProvider(rpc)
    w3 = Web3(provider, middleware=[])
    tmp = cfg_path.parent
    deps = KeeperDeps(
        w3=w3,
        ledger=Ledger(tmp / f"bench-{len(cfg.vaults)}.sqlite"),
        history=PriceHistory(tmp / f"bench-h-{len(cfg.vaults)}.sqlite"),
        keeper_address=keeper,
        policies=policies_for(cfg),
    )
    return Keeper(cfg, deps), provider
