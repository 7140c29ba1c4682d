"""Small web3 helpers for deploying and transacting from unlocked anvil accounts."""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import Wei

from keeper.errors import ChainError
from keeper.localnet.artifacts import Artifact, load


def deploy(w3: Web3, sender: str, artifact: Artifact | str, *args: Any) -> Contract:
    """Deploy `artifact` from the unlocked `sender`; returns the bound contract."""
    art = load(artifact) if isinstance(artifact, str) else artifact
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"deploying {art.name} failed", tx=tx_hash.hex())
    return w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)


def at(w3: Web3, name: str, address: str) -> Contract:
    """Bind the artifact `name` at `address`."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load(name).abi)


def transact(fn: ContractFunction, sender: str, value: int = 0) -> dict[str, Any]:
    """Send `fn` from the unlocked `sender`, wait for the receipt, raise on revert."""
    w3 = fn.w3
    tx_hash = fn.transact({"from": checksum(sender), "value": Wei(value)})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1:
        raise ChainError(f"{fn.fn_name} reverted", tx=tx_hash.hex())
    return dict(receipt)


def checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
