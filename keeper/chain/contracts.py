"""Typed encode/decode helpers over the ABIs the keeper ships (keeper/abi)."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any, cast

from eth_abi.abi import decode, encode
from eth_typing import ABIFunction
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.address import is_address

from keeper.abi import load_abi


def abi(name: str) -> tuple[dict[str, Any], ...]:
    return load_abi(name)


def fn_abi(contract: str, fn: str) -> dict[str, Any]:
    for item in abi(contract):
        if item.get("type") == "function" and item["name"] == fn:
            return item
    raise KeyError(f"{contract}.{fn} not in ABI")


def _type_str(param: dict[str, Any]) -> str:
    t = param["type"]
    if not t.startswith("tuple"):
        return str(t)
    inner = ",".join(_type_str(c) for c in param["components"])
    return f"({inner}){t[len('tuple') :]}"


@cache
def _signature(contract: str, fn: str) -> tuple[bytes, tuple[str, ...]]:
    """Selector and input types of `contract.fn` (a tick encodes over a thousand calls)."""
    item = fn_abi(contract, fn)
    sel = function_abi_to_4byte_selector(cast(ABIFunction, item))
    return bytes(sel), tuple(_type_str(p) for p in item["inputs"])


def encode_call(contract: str, fn: str, args: tuple[Any, ...] = ()) -> bytes:
    """Calldata for `contract.fn(*args)`."""
    sel, types = _signature(contract, fn)
    return sel + encode(types, list(args))


@lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The 20 bytes of a hex address, checked once (as eth_abi checks a hex string): eth_abi
    validates a string again on every encode, which a Multicall3 batch of a thousand calls
    repeats."""
    if not is_address(address):
        raise ValueError(f"not an address: {address!r}")
    return bytes.fromhex(address[2:])


def decode_output(contract: str, fn: str, data: bytes) -> Any:
    """Decode the return of `contract.fn`, tuples turned into dicts keyed by component name."""
    item = fn_abi(contract, fn)
    outputs = item["outputs"]
    values = decode([_type_str(p) for p in outputs], data)
    named = [_named(p, v) for p, v in zip(outputs, values, strict=True)]
    return named[0] if len(named) == 1 else tuple(named)


def _named(param: dict[str, Any], value: Any) -> Any:
    t = param["type"]
    if not t.startswith("tuple"):
        return value
    if t.endswith("[]"):
        elem = {**param, "type": t[:-2]}
        return [_named(elem, v) for v in value]
    return {c["name"]: _named(c, v) for c, v in zip(param["components"], value, strict=True)}


def selector(contract: str, fn: str) -> bytes:
    return bytes(function_abi_to_4byte_selector(cast(ABIFunction, fn_abi(contract, fn))))
