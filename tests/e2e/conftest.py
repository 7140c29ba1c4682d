"""A configured vault, keystore account and networks.yaml for keeper tests (session anvil)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from keeper.localnet.deploy import LocalMarket, write_deployments
from keeper.localnet.node import DevNode
from keeper.localnet.vault import VaultSetup, deploy_vault, deposit_usdc, seed_basket

PASSPHRASE = "correct horse battery staple 42"


@dataclass(frozen=True)
class KeeperEnv:
    w3: Web3
    market: LocalMarket
    vault: str
    keeper: str
    config: Path
    ledger: Path
    tmp: Path
    store: str = ""  # postgresql://... when the config names a shared store; else the ledger

    @property
    def store_location(self) -> str:
        return self.store or str(self.ledger)


VAULT_YAML = """
  - name: {name}
    from_deployments: {name}
    assets:
      - {{symbol: WETH, target_bps: 4000}}
      - {{symbol: WBTC, target_bps: 3000}}
      - {{symbol: LINK, target_bps: 1000}}
      - {{symbol: USDC, target_bps: 2000}}
    bands: {{inner_bps: 200, outer_bps: 500}}
    policy: {{name: {policy}, params: {{}}}}"""


def network_yaml(rpc: str, deployments: str) -> str:
    return f"""
network: local
networks:
  local:
    rpc_urls: ["{rpc}"]
    chain_id: 31337
    confirmations: 1
    block_time_s: 1
    deployments: {deployments}"""


def write_config(
    tmp: Path,
    rpc: str,
    policy: str = "threshold",
    extra: str = "",
    vaults: tuple[str, ...] = ("main",),
) -> Path:
    cfg = tmp / "networks.yaml"
    vault_yaml = "".join(VAULT_YAML.format(name=n, policy=policy) for n in vaults)
    cfg.write_text(f"""{network_yaml(rpc, "deployments.json")}
vaults:{vault_yaml}
gas:
  max_fee_gwei: 100
  priority_fee_percentile: 50
  per_rebalance_budget_gwei: 50000000
  replace_after_blocks: 3
account:
  keystore: keystore.json
  passphrase_file: passphrase.txt
schedule: {{interval_s: 1}}
ledger: {{path: keeper.sqlite}}
metrics_port: 0
{extra}
""")
    return cfg


def local_config(rpc: str, tmp: Path, state: Path, policy: str = "threshold") -> str:
    """A networks.yaml for a demo or replay run: the local network at `rpc` (a replay sets
    LOCAL_RPC, so "${LOCAL_RPC}" works), deployments under `tmp`, keystore and ledger in `state`,
    and a gas budget for real June 2022 gas (up to 96 gwei)."""
    vault = VAULT_YAML.format(name="main", policy=policy)
    return f"""{network_yaml(rpc, f"{tmp}/deployments/local.json")}
vaults:{vault}
gas:
  max_fee_gwei: 100
  per_rebalance_budget_gwei: 100000000
account:
  keystore: {state}/keeper-keystore.json
  passphrase_file: {state}/keeper-passphrase.txt
schedule: {{interval_s: 12}}
ledger: {{path: {state}/keeper.sqlite}}
metrics_port: 0
"""


def make_keystore(tmp: Path) -> str:
    acct = Account.create()
    # the operator's format (scrypt) at a light cost: eth-account's default n = 2**18 takes about
    # a second to write and again at every unlock, which the suite pays hundreds of times
    keystore = Account.encrypt(acct.key, PASSPHRASE, kdf="scrypt", iterations=2**10)
    (tmp / "keystore.json").write_text(json.dumps(keystore))
    (tmp / "passphrase.txt").write_text(PASSPHRASE + "\n")
    return str(acct.address)


def setup_keeper_env(
    w3: Web3,
    market: LocalMarket,
    rpc_url: str,
    tmp: Path,
    setup: VaultSetup | None = None,
    policy: str = "threshold",
) -> KeeperEnv:
    """A vault balanced at its targets ($1M) on `market`, a funded keeper with an encrypted
    keystore, and a networks.yaml for the node at `rpc_url` (anvil or Hardhat)."""
    acc = w3.eth.accounts
    keeper = make_keystore(tmp)
    DevNode(w3).set_balance(keeper, 10**19)
    vault = deploy_vault(
        w3, market, admin=acc[0], keeper=keeper, guardian=acc[2],
        setup=setup or VaultSetup(cooldown_s=600),
    )
    deposit_usdc(w3, market, vault, acc[3], 1_000)
    seed_basket(w3, market, vault, 1_000_000)
    write_deployments(market.with_vault("main", vault.address), tmp / "deployments.json")
    cfg = write_config(tmp, rpc_url, policy=policy)
    return KeeperEnv(
        w3=w3,
        market=market,
        vault=vault.address,
        keeper=keeper,
        config=cfg,
        ledger=tmp / "keeper.sqlite",
        tmp=tmp,
    )


@pytest.fixture
def keeper_env(w3: Web3, market: LocalMarket, anvil_url: str, tmp_path: Path) -> KeeperEnv:
    """A vault balanced at its targets ($1M), a funded keeper with an encrypted keystore."""
    return setup_keeper_env(w3, market, anvil_url, tmp_path)
