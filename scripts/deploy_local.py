"""`ape run deploy_local`: deploy the local market (and a vault) on the running anvil.

Start anvil first (`anvil &` after `source .tools/env.sh`), or let `keeper demo` do all of it.
The addresses go to the deployments file that networks.yaml's `local` network reads.
"""

from __future__ import annotations

from pathlib import Path

from ape import networks

from keeper.localnet.deploy import deploy_market, write_deployments

DEPLOYMENTS = Path(__file__).resolve().parents[1] / "deployments" / "local.json"


def main() -> None:
    w3 = networks.provider.web3
    market = deploy_market(w3, w3.eth.accounts[0])
    write_deployments(market, DEPLOYMENTS)
    print(f"local market deployed on chain {market.chain_id}; addresses in {DEPLOYMENTS}")
