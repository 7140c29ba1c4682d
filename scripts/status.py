"""`ape run status [--config PATH] [--json] [--network ...]`: weights against targets and bands,
the collateral ratio, pending transactions and recent decisions.

The same code as `keeper status` (keeper.cli), not a copy; ape parses the options.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from keeper.cli import app


@click.command(cls=ConnectedProviderCommand)
@click.option("--config", "config", default="networks.yaml", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def cli(config: str, as_json: bool) -> None:
    app(["status", "--config", config] + ["--json"] * as_json, standalone_mode=False)
