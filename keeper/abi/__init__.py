"""The ABIs the keeper uses at run time, shipped with the package (written from the build by
tools/export_abis.py), so the keeper needs neither the contracts' build nor node_modules."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from keeper.errors import ToolchainError

SHIPPED = ("RebalancingVault", "Multicall3", "QuoterV2", "UniswapV3Pool")


def abi_dir() -> Path:
    return Path(__file__).resolve().parent


@lru_cache(maxsize=16)
def load_abi(name: str) -> tuple[dict[str, Any], ...]:
    """The shipped ABI of `name`."""
    if name not in SHIPPED:
        raise ToolchainError(f"no shipped ABI for {name}; shipped: {', '.join(SHIPPED)}")
    path = abi_dir() / f"{name}.json"
    try:
        return tuple(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise ToolchainError(
            f"{path} is missing or unreadable ({err}). Fix: reinstall vault-keeper"
        ) from err
