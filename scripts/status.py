"""`ape run status`: weights against targets and bands, collateral, pending txs, recent decisions.

The same code as `keeper status` (keeper.cli); options after `--`, e.g. `ape run status -- --json`.
"""

from __future__ import annotations

import sys

from keeper.cli import app


def main() -> None:
    args = [a for a in sys.argv[sys.argv.index("--") + 1 :]] if "--" in sys.argv else []
    app(["status", *args], standalone_mode=False)
