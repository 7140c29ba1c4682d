"""Compiled artifacts: the project's own (ape's .build manifest) and the npm Uniswap v3 ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from keeper.errors import ToolchainError
from keeper.paths import project_root

UNISWAP = {
    "UniswapV3Factory": (
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
    ),
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
    "QuoterV2": "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery/artifacts/contracts/"
        "NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
}


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    runtime_bytecode: str


@lru_cache(maxsize=1)
def _manifest(root: Path) -> dict[str, Any]:
    path = root / ".build" / "__local__.json"
    if not path.exists():
        raise ToolchainError(
            f"{path} not found: the contracts are not compiled. Fix: run `make setup`"
        )
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ToolchainError(
            f"{path} is unreadable ({err}). Fix: rm -rf .build && make setup"
        ) from err


def load(name: str) -> Artifact:
    """An artifact by contract name, from the Uniswap npm packages or the project build."""
    root = project_root()
    if name in UNISWAP:
        return _load_npm(root, name)
    types = _manifest(root).get("contractTypes", {})
    if name not in types:
        raise ToolchainError(
            f"contract {name} is not in .build: Fix: run `make setup` to recompile"
        )
    ct = types[name]
    return Artifact(
        name=name,
        abi=ct["abi"],
        bytecode=ct.get("deploymentBytecode", {}).get("bytecode", "0x"),
        runtime_bytecode=ct.get("runtimeBytecode", {}).get("bytecode", "0x"),
    )


def _load_npm(root: Path, name: str) -> Artifact:
    path = root / "node_modules" / UNISWAP[name]
    if not path.exists():
        raise ToolchainError(f"{path} not found: node packages missing. Fix: run `make setup`")
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data["bytecode"], data["deployedBytecode"])
