"""`ape run deploy_local`: deploy the local market, a keeper keystore and a seeded vault.

Start anvil first (`source .tools/env.sh && anvil &`), or let `keeper demo` do all of it. The
addresses go to deployments/local.json, which networks.yaml's `local` network reads, and the
keeper's encrypted keystore and passphrase file to state/.
"""

from __future__ import annotations

from pathlib import Path

from ape import networks

from keeper.demo import deploy_local_stack

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    w3 = networks.provider.web3
    market, keeper = deploy_local_stack(w3, ROOT / "state")
    print(
        f"local market deployed on chain {market.chain_id}: vault {market.vaults['main']}, "
        f"keeper {keeper}; addresses in {ROOT / 'deployments' / 'local.json'}"
    )
