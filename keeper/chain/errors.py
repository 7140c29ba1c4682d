"""Name revert data: the vault's custom errors (from its ABI), Error(string) and Panic(uint256)."""

from __future__ import annotations

from functools import lru_cache

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from keeper.chain.contracts import _type_str, abi

CONTRACTS = ("RebalancingVault",)


@lru_cache(maxsize=1)
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        bytes.fromhex("08c379a0"): ("Error", ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
    }
    for name in CONTRACTS:
        for item in abi(name):
            if item.get("type") != "error":
                continue
            types = [_type_str(p) for p in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


def name_revert(data: str | bytes | None) -> str | None:
    """'StaleFeed(0xabc.., 1700000000, 3600)' for known revert data, else None."""
    if data is None:
        return None
    raw = (
        bytes.fromhex(data[2:] if data.startswith("0x") else data)
        if isinstance(data, str)
        else data
    )
    entry = _error_table().get(raw[:4])
    if entry is None:
        return None
    name, types = entry
    try:
        args = decode(types, raw[4:])
    except (ValueError, TypeError):
        return name
    return f"{name}({', '.join(_fmt(a) for a in args)})"


def _fmt(v: object) -> str:
    return "0x" + v.hex() if isinstance(v, bytes) else str(v)


# JSON-RPC answers for a method the node does not have: -32601 is the standard code, -32004
# Hardhat's ("Method ... is not supported"); providers word it in many ways.
_MISSING_CODES = (-32601, -32004)
_MISSING_WORDS = ("not supported", "does not exist", "not found", "not available", "unsupported")


def method_missing(error: object) -> bool:
    """True when a JSON-RPC error says the node lacks the method (not that the call failed)."""
    if not isinstance(error, dict):
        return False
    message = str(error.get("message", "")).lower()
    return error.get("code") in _MISSING_CODES or (
        "method" in message and any(w in message for w in _MISSING_WORDS)
    )


def revert_data(error: object) -> str | None:
    """The revert data of a JSON-RPC error: anvil and geth put the hex string in `data`,
    Hardhat nests it as `data.data`."""
    data = error.get("data") if isinstance(error, dict) else None
    if isinstance(data, dict):
        data = data.get("data")
    return data if isinstance(data, str) and data.startswith("0x") else None
