"""What differs between nodes, pinned without a node: the dev node's own methods (anvil_* or
hardhat_*, any other node refused by name), JSON-RPC error shapes (a missing method, revert
data flat or nested), Hardhat's send errors, the planner's eth_estimateGas fallback, and the
library linking of npm artifacts (Aave's Pool)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from web3 import Web3
from web3.providers import JSONBaseProvider

from keeper.chain.errors import method_missing, name_revert, revert_data
from keeper.errors import ToolchainError
from keeper.localnet.artifacts import Artifact, linked, load
from keeper.localnet.node import DevNode
from keeper.plan import GasMeasure, estimate_many
from keeper.send.classify import SendFailure, classify_message

BAD_EPOCH = "0x4e3fea89" + (7).to_bytes(32, "big").hex() + (0).to_bytes(32, "big").hex()
VAULT = "0x" + "11" * 20


class FakeNode(JSONBaseProvider):
    """Answers web3_clientVersion, records every method asked, and serves gas batches."""

    def __init__(self, version: str, access_list: bool = True) -> None:
        super().__init__()
        self.version, self.access_list = version, access_list
        self.asked: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.asked.append(str(method))
        if method == "web3_clientVersion":
            return {"jsonrpc": "2.0", "id": 1, "result": self.version}
        if method.startswith("hardhat_") and self.version.startswith("HardhatNetwork"):
            return {"jsonrpc": "2.0", "id": 1, "result": True}
        return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no such method"}}

    def make_batch_request(self, requests: Any) -> Any:
        out = []
        for method, params in requests:
            self.asked.append(str(method))
            if method == "eth_createAccessList" and not self.access_list:
                msg = "Method eth_createAccessList is not supported"
                out.append({"error": {"code": -32004, "message": msg}})
            elif params[0]["data"] == "0xdead":  # a call the vault refuses
                data = {"message": "reverted", "data": BAD_EPOCH}  # Hardhat nests the data
                out.append({"error": {"code": -32603, "message": "VM Exception", "data": data}})
            elif method == "eth_createAccessList":
                out.append({"result": {"accessList": [], "gasUsed": hex(250_000)}})
            else:
                out.append({"result": hex(290_000)})
        return out


def test_dev_node_uses_the_nodes_own_method_names() -> None:
    node = FakeNode("HardhatNetwork/2.29.1/@nomicfoundation/edr/0.3.8")
    DevNode(Web3(node)).set_balance(VAULT, 10**18)
    assert node.asked[-1] == "hardhat_setBalance"


def test_dev_node_refuses_any_other_node_by_name() -> None:
    with pytest.raises(ToolchainError, match=r"Geth/v1\.13\.5.*anvil or Hardhat Network"):
        DevNode(Web3(FakeNode("Geth/v1.13.5-stable/linux-amd64/go1.21.4")))


def test_json_rpc_error_shapes() -> None:
    assert method_missing({"code": -32601, "message": "the method does not exist"})
    assert method_missing({"code": -32004, "message": "Method eth_x is not supported"})
    assert method_missing({"code": -32000, "message": "method not available on this plan"})
    assert not method_missing({"code": 3, "message": "execution reverted", "data": BAD_EPOCH})
    assert revert_data({"code": 3, "message": "execution reverted", "data": BAD_EPOCH}) == BAD_EPOCH
    assert revert_data({"code": -32603, "data": {"message": "x", "data": BAD_EPOCH}}) == BAD_EPOCH
    assert revert_data({"code": -32000, "message": "out of gas"}) is None
    assert name_revert(BAD_EPOCH) == "BadEpoch(7, 0)"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Nonce too low. Expected nonce to be 3 but got 2.", SendFailure.NONCE_TOO_LOW),
        ("Nonce too high. Expected nonce to be 2 but got 4. Note that transactions can't be "
         "queued when automining.", SendFailure.NONCE_TOO_HIGH),
        ("Known transaction: 0xabc", SendFailure.ALREADY_KNOWN),
        ("Replacement transaction underpriced. A gasPrice/maxFeePerGas of at least 2 is "
         "necessary to replace the existing transaction", SendFailure.REPLACEMENT_UNDERPRICED),
        ("Transaction maxFeePerGas (1) is too low for the next block, which has a "
         "baseFeePerGas of 875000000", SendFailure.UNDERPRICED),
        ("Sender doesn't have enough funds to send tx. The max upfront cost is: 10 and the "
         "sender's account only has: 1", SendFailure.INSUFFICIENT_FUNDS),
        ("Transaction requires at least 21000 gas but got 100", SendFailure.INTRINSIC_GAS),
    ],
)
def test_hardhat_send_errors_are_classified(message: str, kind: SendFailure) -> None:
    assert classify_message(message) == kind


def test_gas_falls_back_to_estimate_gas_where_access_lists_are_missing() -> None:
    node = FakeNode("HardhatNetwork/2.29.1", access_list=False)
    w3 = Web3(node)
    txs = [(VAULT, VAULT, b"\x01"), (VAULT, VAULT, bytes.fromhex("dead"))]
    assert estimate_many(w3, txs, 7) == [
        GasMeasure(gas_used=290_000), GasMeasure(gas_used=None, why="BadEpoch(7, 0)")
    ]
    assert node.asked == ["eth_createAccessList"] * 2 + ["eth_estimateGas"] * 2
    node.asked.clear()
    estimate_many(w3, txs[:1], 8)  # remembered: no second try of the missing method
    assert node.asked == ["eth_estimateGas"]


def test_gas_comes_from_access_lists_where_the_node_has_them() -> None:
    node = FakeNode("anvil/v1.7.1")
    assert estimate_many(Web3(node), [(VAULT, VAULT, b"\x01")], 7) == [GasMeasure(gas_used=250_000)]
    assert node.asked == ["eth_createAccessList"]


def test_npm_artifacts_are_linked_to_their_libraries() -> None:
    pool = load("Pool")
    assert set(pool.links) >= {"BorrowLogic", "SupplyLogic", "LiquidationLogic"}
    address = "0x" + "ab" * 20
    done = linked(pool, dict.fromkeys(pool.links, address))
    assert done.links == {} and "__$" not in done.bytecode
    start = pool.links["SupplyLogic"][0]
    assert done.bytecode[2 + 2 * start : 2 + 2 * start + 40] == "ab" * 20
    with pytest.raises(ToolchainError, match="needs the libraries BorrowLogic"):
        linked(load("FlashLoanLogic"), {})
    assert isinstance(load("AToken"), Artifact) and load("AToken").links == {}


def test_a_replica_off_its_mainnet_addresses_is_refused_by_name() -> None:
    from keeper.localnet import mainnet
    from keeper.localnet.deploy import LocalMarket, Token

    tokens = {s: Token(s, a, 18) for s, a in mainnet.TOKEN_ADDRESSES.items()}
    right = LocalMarket(
        chain_id=1, deployer=VAULT, tokens=tokens, feeds=dict(mainnet.FEED_ADDRESSES),
        factory=mainnet.UNISWAP_FACTORY, router=mainnet.SWAP_ROUTER, quoter=mainnet.QUOTER_V2,
        position_manager=mainnet.POSITION_MANAGER, pools={}, lending_pool=mainnet.AAVE_POOL,
        multicall3="0xcA11bde05977b3631167028862bE2a173976CA11", prices_e8={},
    )
    mainnet.check_addresses(right)
    wrong = replace(right, router="0x68b3465833fb72A70ecDF485E0e4C7bD8665Fc45")  # SwapRouter02
    with pytest.raises(ToolchainError, match=r"router at 0x68b3.*not 0xE592427A"):
        mainnet.check_addresses(wrong)
