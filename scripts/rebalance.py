"""`ape run rebalance`: one keeper tick that may send (asks first), on ape's connected network.

Uses the keeper's own modules (keeper.cli), not a copy: the config's RPC should point at the
node ape is connected to (networks.yaml, --network). Pass options after `--`, e.g.
`ape run rebalance -- --yes --vault main`.
"""

from __future__ import annotations

import sys

from keeper.cli import app


def main() -> None:
    args = [a for a in sys.argv[sys.argv.index("--") + 1 :]] if "--" in sys.argv else []
    app(["rebalance", *args], standalone_mode=False)
