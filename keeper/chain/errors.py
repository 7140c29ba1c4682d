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
