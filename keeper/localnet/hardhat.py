"""Hardhat Network (npm hardhat 2) as a second local node, started from the project's own
node_modules with tools/hardhat.config.cjs. It runs offline, listens on 127.0.0.1 only (its
default is every interface), and names its node methods hardhat_* (keeper.localnet.node)."""

from __future__ import annotations

import os
from pathlib import Path

from keeper.chain.anvil import NodeProcess
from keeper.errors import ToolchainError
from keeper.paths import project_root

START_TIMEOUT_S = 60.0  # node.js loads hardhat in a few seconds; a loaded machine takes longer


def hardhat_cli() -> Path:
    path = project_root() / "node_modules" / "hardhat" / "internal" / "cli" / "bootstrap.js"
    if not path.exists():
        raise ToolchainError(f"{path} not found: hardhat is not installed. Fix: run `make setup`")
    return path


class Hardhat(NodeProcess):
    """`hardhat node` as a child process (chain id 31337, 1 gwei initial base fee)."""

    name = "hardhat"

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        super().__init__(port, log_path)
        root = project_root()
        config = root / "tools" / "hardhat.config.cjs"
        self.args = [
            "node",
            str(hardhat_cli()),
            "--config",
            str(config),
            "node",
            "--hostname",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.cwd = root
        # no interactive telemetry question, and nothing to fetch: the node runs offline
        self.env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        self.ready_timeout_s = START_TIMEOUT_S
