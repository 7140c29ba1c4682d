"""One raw JSON-RPC request by method name (anvil_*, evm_*, debug_* and other node extensions
that web3.py has no typed method for)."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint, RPCResponse

from keeper.errors import ChainError


def request(w3: Web3, method: str, params: list[Any]) -> RPCResponse:
    """The node's raw answer (a dict with "result" or "error"); transport errors propagate."""
    return w3.provider.make_request(RPCEndpoint(method), params)


def call(w3: Web3, method: str, params: list[Any]) -> Any:
    """The request's result; an error answer raises ChainError naming the method and the
    node's message (a node without the method says so here, not three steps later)."""
    response = request(w3, method, params)
    error = response.get("error")
    if error is not None:
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ChainError(f"{method} failed: {message}", method=method)
    return response.get("result")
