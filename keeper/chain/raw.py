"""One raw JSON-RPC request by method name (anvil_*, evm_*, debug_* and other node extensions
that web3.py has no typed method for)."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint, RPCResponse


def request(w3: Web3, method: str, params: list[Any]) -> RPCResponse:
    """The node's raw answer (a dict with "result" or "error"); transport errors propagate."""
    return w3.provider.make_request(RPCEndpoint(method), params)
