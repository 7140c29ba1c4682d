"""Compiled artifacts: the project's own (ape's .build manifest) and the npm packages' (Uniswap
v3 and Aave v3 core ship the compiled contracts; the local market deploys those bytes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
# Aave v3 core (npm @aave/core-v3): contract name -> folder under artifacts/contracts/
_AAVE_DIRS = {
    "protocol/configuration": ("PoolAddressesProvider", "ACLManager"),
    "protocol/pool": ("Pool", "PoolConfigurator", "DefaultReserveInterestRateStrategy"),
    "protocol/tokenization": ("AToken", "VariableDebtToken", "StableDebtToken"),
    "protocol/libraries/logic": (
        "BorrowLogic",
        "BridgeLogic",
        "ConfiguratorLogic",
        "EModeLogic",
        "FlashLoanLogic",
        "LiquidationLogic",
        "PoolLogic",
        "SupplyLogic",
    ),
    "misc": ("AaveOracle", "AaveProtocolDataProvider"),
}
AAVE = {
    name: f"@aave/core-v3/artifacts/contracts/{folder}/{name}.sol/{name}.json"
    for folder, names in _AAVE_DIRS.items()
    for name in names
}
NPM = {**UNISWAP, **AAVE}


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    runtime_bytecode: str
    # library name -> byte offsets of its 20-byte placeholders in `bytecode` (unlinked only)
    links: dict[str, tuple[int, ...]] = field(default_factory=dict)


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
    """An artifact by contract name, from the npm packages or the project build."""
    root = project_root()
    if name in NPM:
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


@lru_cache(maxsize=64)
def _load_npm(root: Path, name: str) -> Artifact:
    path = root / "node_modules" / NPM[name]
    if not path.exists():
        raise ToolchainError(f"{path} not found: node packages missing. Fix: run `make setup`")
    data = json.loads(path.read_text())
    links = {
        lib: tuple(int(ref["start"]) for ref in refs)
        for libs in data.get("linkReferences", {}).values()
        for lib, refs in libs.items()
    }
    return Artifact(name, data["abi"], data["bytecode"], data["deployedBytecode"], links)


def linked(art: Artifact, libraries: dict[str, str]) -> Artifact:
    """`art` with every library placeholder replaced by the deployed library's address."""
    missing = sorted(set(art.links) - set(libraries))
    if missing:
        raise ToolchainError(f"{art.name} needs the libraries {', '.join(missing)} deployed first")
    code = art.bytecode.removeprefix("0x")  # placeholders are not hex: edit the text
    for lib, offsets in art.links.items():
        address = libraries[lib].removeprefix("0x").lower()
        for start in offsets:
            code = code[: 2 * start] + address + code[2 * start + 40 :]
    return replace(art, bytecode="0x" + code, links={})
