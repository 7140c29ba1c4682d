"""The network's chain id, answered without a round trip.

web3.py's validation middleware asks the node for `eth_chainId` before every `eth_call`,
`eth_estimateGas`, `eth_createAccessList` and `eth_sendTransaction` it validates: one extra
round trip each, more than the calls a tick needs. The keeper checks every endpoint's chain id
when it connects (and the failover provider drops an endpoint that answers another), so the
answer is known: this middleware gives it, innermost, for every `eth_chainId` request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3 import Web3
from web3.middleware.base import Web3Middleware
from web3.types import RPCEndpoint, RPCResponse

NAME = "known_chain_id"


class KnownChainId(Web3Middleware):
    """Answers eth_chainId with the chain id the connection was checked against."""

    chain_id = 0

    def wrap_make_request(
        self, make_request: Callable[[RPCEndpoint, Any], RPCResponse]
    ) -> Callable[[RPCEndpoint, Any], RPCResponse]:
        answer: RPCResponse = {"jsonrpc": "2.0", "id": 0, "result": hex(self.chain_id)}

        def middleware(method: RPCEndpoint, params: Any) -> RPCResponse:
            return answer if method == "eth_chainId" else make_request(method, params)

        return middleware


def with_known_chain_id(w3: Web3, chain_id: int) -> Web3:
    """`w3`, answering eth_chainId itself from now on (idempotent)."""

    def build(inner: Web3) -> KnownChainId:
        mw = KnownChainId(inner)
        mw.chain_id = chain_id
        return mw

    onion = w3.middleware_onion
    if NAME in onion:
        onion.remove(NAME)
    onion.inject(build, name=NAME, layer=0)  # type: ignore[arg-type]
    return w3
