"""`ape run deploy_local [--mainnet-addresses] [--state-dir DIR] [--deployments FILE]
[--network ...]`: deploy the local market, a keeper keystore and a seeded vault on the node ape
is connected to (anvil or Hardhat Network).

Start the node first (`source .tools/env.sh && anvil &`), or let `keeper demo` do all of it. The
addresses go to deployments/local.json, which networks.yaml's `local` network reads, and the
keeper's encrypted keystore and passphrase file to state/. A ledger left in the state directory
by an earlier deployment is moved to its archive/ first (it tracks a vault and a key this run
replaces).

With --mainnet-addresses the market sits at its canonical Ethereum mainnet addresses: on a fresh
chain (`anvil --chain-id 1`) the mainnet replica is placed there; on an anvil fork of mainnet the
real contracts are used as they are. Either way a vault is deployed and funded with tokens
bought for ETH, and the addresses go to deployments/mainnet-fork.json, which networks.yaml's
`mainnet-fork` network reads (docs/mainnet-fork.md).
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import networks
from ape.cli import ConnectedProviderCommand

from keeper.demo import deploy_local_stack

ROOT = Path(__file__).resolve().parents[1]


@click.command(cls=ConnectedProviderCommand)
@click.option("--mainnet-addresses", is_flag=True,
              help="the market at its canonical mainnet addresses (replica, or a mainnet fork)")
@click.option("--state-dir", type=click.Path(path_type=Path), default=ROOT / "state",
              show_default=True, help="keystore, passphrase file and ledger")
@click.option("--deployments", type=click.Path(path_type=Path), default=None,
              help="[default: deployments/local.json, or deployments/mainnet-fork.json]")
def cli(mainnet_addresses: bool, state_dir: Path, deployments: Path | None) -> None:
    w3 = networks.provider.web3
    name = "mainnet-fork.json" if mainnet_addresses else "local.json"
    out = deployments or ROOT / "deployments" / name
    market, keeper = deploy_local_stack(w3, state_dir, deployments=out, say=click.echo,
                                        mainnet_addresses=mainnet_addresses)
    click.echo(
        f"local market deployed on chain {market.chain_id}: vault {market.vaults['main']}, "
        f"keeper {keeper}; addresses in {out}"
    )
