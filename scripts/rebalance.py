"""`ape run rebalance [--yes] [--vault NAME] [--config PATH] [--json] [--network ...]`: one keeper
tick that may send (it asks first unless --yes), on the node the config's network points at.

The same code as `keeper rebalance` (keeper.cli), not a copy; ape parses the options.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from keeper.cli import app


@click.command(cls=ConnectedProviderCommand)
@click.option("--yes", "-y", is_flag=True, help="do not ask before sending")
@click.option("--vault", default=None, help="one vault (name or address); default: all")
@click.option("--config", "config", default="networks.yaml", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def cli(yes: bool, vault: str | None, config: str, as_json: bool) -> None:
    args = ["rebalance", "--config", config]
    args += ["--yes"] * yes + ["--json"] * as_json + (["--vault", vault] if vault else [])
    app(args, standalone_mode=False)
