"""web3.py's request validation without a chain-id round trip before every call.

web3.py's validation middleware asks the node for `eth_chainId` before every `eth_call`,
`eth_estimateGas`, `eth_createAccessList` and `eth_sendTransaction`, to check a `chainId` the
transaction may declare: one extra round trip each, more than a tick's own requests. The
keeper's calls declare none, so the check has nothing to check. This middleware takes the
validation's place and runs it only for a request that declares a chain id; everything else,
explicit `eth_chainId` requests included (the sender asks the node before it signs), goes to the
node as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3 import Web3
from web3.middleware.base import Web3Middleware
from web3.middleware.validation import METHODS_TO_VALIDATE, ValidationMiddleware
from web3.types import RPCEndpoint, RPCResponse

NAME = "validation"  # web3.py's name for its validation middleware
MakeRequest = Callable[[RPCEndpoint, Any], RPCResponse]


class ValidationOnDemand(Web3Middleware):
    """web3.py's validation, for the requests that declare a chain id."""

    def wrap_make_request(self, make_request: MakeRequest) -> MakeRequest:
        validated: MakeRequest = ValidationMiddleware(self._w3).wrap_make_request(make_request)

        def middleware(method: RPCEndpoint, params: Any) -> RPCResponse:
            if method in METHODS_TO_VALIDATE and not declares_chain_id(params):
                return make_request(method, params)
            return validated(method, params)

        return middleware

    def wrap_make_batch_request(self, make_batch_request: Any) -> Any:
        return ValidationMiddleware(self._w3).wrap_make_batch_request(make_batch_request)


def declares_chain_id(params: Any) -> bool:
    tx = params[0] if isinstance(params, list | tuple) and params else None
    return isinstance(tx, dict) and "chainId" in tx


def without_chain_id_round_trips(w3: Web3) -> Web3:
    """`w3` with web3.py's validation middleware in its place, asking the node's chain id only
    where a request declares one (idempotent)."""
    onion = w3.middleware_onion
    if NAME in onion:
        onion.replace(NAME, ValidationOnDemand)  # type: ignore[arg-type]
    return w3
