"""`ape run deploy_local [--state-dir DIR] [--deployments FILE] [--network ...]`: deploy the local
market, a keeper keystore and a seeded vault on the node ape is connected to.

Start anvil first (`source .tools/env.sh && anvil &`), or let `keeper demo` do all of it. The
addresses go to deployments/local.json, which networks.yaml's `local` network reads, and the
keeper's encrypted keystore and passphrase file to state/. A ledger left in the state directory
by an earlier deployment is moved to its archive/ first (it tracks a vault and a key this run
replaces).
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import networks
from ape.cli import ConnectedProviderCommand

from keeper.demo import deploy_local_stack

ROOT = Path(__file__).resolve().parents[1]


@click.command(cls=ConnectedProviderCommand)
@click.option("--state-dir", type=click.Path(path_type=Path), default=ROOT / "state",
              show_default=True, help="keystore, passphrase file and ledger")
@click.option("--deployments", type=click.Path(path_type=Path),
              default=ROOT / "deployments" / "local.json", show_default=True)
def cli(state_dir: Path, deployments: Path) -> None:
    w3 = networks.provider.web3
    market, keeper = deploy_local_stack(w3, state_dir, deployments=deployments, say=click.echo)
    click.echo(
        f"local market deployed on chain {market.chain_id}: vault {market.vaults['main']}, "
        f"keeper {keeper}; addresses in {deployments}"
    )
