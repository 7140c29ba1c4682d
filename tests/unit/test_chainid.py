"""web3.py's validation asks the node's chain id only for a request that declares one: no
round trip before the keeper's calls, and the sender's own chain-id check still reaches the
node."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import Web3ValidationError
from web3.providers import JSONBaseProvider

from keeper.chain.chainid import without_chain_id_round_trips

TO = Web3.to_checksum_address("0x00000000000000000000000000000000000000aa")


class Node(JSONBaseProvider):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.seen.append(str(method))
        result = hex(5) if method == "eth_chainId" else "0x"
        return {"jsonrpc": "2.0", "id": 1, "result": result}


def _w3() -> tuple[Web3, Node]:
    node = Node()
    return without_chain_id_round_trips(Web3(node)), node


def test_a_call_costs_one_request() -> None:
    w3, node = _w3()
    w3.eth.call({"to": TO, "data": "0x1234"})
    assert node.seen == ["eth_call"]
    plain = Node()
    Web3(plain).eth.call({"to": TO, "data": "0x1234"})  # web3.py's own stack, for comparison
    assert plain.seen == ["eth_chainId", "eth_call", "eth_chainId"]  # before and after


def test_a_declared_chain_id_is_still_checked_against_the_node() -> None:
    w3, node = _w3()
    with pytest.raises(Web3ValidationError, match="declared chain ID 1"):
        w3.eth.call({"to": TO, "data": "0x", "chainId": 1})  # type: ignore[typeddict-item]
    assert node.seen == ["eth_chainId"]
    w3.eth.call({"to": TO, "data": "0x", "chainId": 5})  # type: ignore[typeddict-item]
    assert node.seen[1:] == ["eth_chainId", "eth_call", "eth_chainId"]


def test_the_chain_id_itself_is_asked_of_the_node() -> None:
    w3, node = _w3()
    assert w3.eth.chain_id == 5 and node.seen == ["eth_chainId"]
    assert without_chain_id_round_trips(w3) is w3  # idempotent
