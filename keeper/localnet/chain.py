"""Small web3 helpers for deploying and transacting from unlocked anvil accounts."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import Wei

from keeper.errors import ChainError
from keeper.localnet.artifacts import Artifact, load

# Setup transactions name their gas and fees, so web3 sends each one at once instead of first
# estimating it and asking for fees (three round trips and one more execution per transaction).
# The node charges only the gas used; the cap must stay under the block gas limit (30M).
SETUP_GAS = 15_000_000
SETUP_MAX_FEE_WEI = 100 * 10**9
SETUP_TIP_WEI = 10**9


def _fields(sender: str, value: int = 0) -> Any:
    return {
        "from": checksum(sender),
        "value": Wei(value),
        "gas": SETUP_GAS,
        "maxFeePerGas": Wei(SETUP_MAX_FEE_WEI),
        "maxPriorityFeePerGas": Wei(SETUP_TIP_WEI),
    }


def deploy(w3: Web3, sender: str, artifact: Artifact | str, *args: Any) -> Contract:
    """Deploy `artifact` from the unlocked `sender`; returns the bound contract."""
    art = load(artifact) if isinstance(artifact, str) else artifact
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = factory.constructor(*args).transact(_fields(sender))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"deploying {art.name} failed", tx=tx_hash.hex())
    return w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)


def at(w3: Web3, name: str, address: str) -> Contract:
    """Bind the artifact `name` at `address` (bound once per node connection: building a web3
    contract object parses the whole ABI, the larger part of a market move's time)."""
    return _bound(w3, name, Web3.to_checksum_address(address))


@lru_cache(maxsize=1024)
def _bound(w3: Web3, name: str, address: ChecksumAddress) -> Contract:
    return w3.eth.contract(address=address, abi=load(name).abi)


def transact(fn: ContractFunction, sender: str, value: int = 0) -> dict[str, Any]:
    """Send `fn` from the unlocked `sender`, wait for the receipt, raise on revert."""
    w3 = fn.w3
    tx_hash = fn.transact(_fields(sender, value))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1:
        why = _replayed_reason(fn, sender, value, receipt["blockNumber"] - 1)
        raise ChainError(f"{fn.fn_name} reverted: {why}", tx=tx_hash.hex())
    return dict(receipt)


def _replayed_reason(fn: ContractFunction, sender: str, value: int, block: int) -> str:
    """The revert reason of a setup transaction, from the same call at its parent block."""
    from web3.exceptions import ContractLogicError

    from keeper.chain.errors import name_revert

    try:
        fn.call({"from": checksum(sender), "value": Wei(value)}, block_identifier=block)
    except ContractLogicError as err:
        data = err.data if isinstance(err.data, str) else None
        return name_revert(data) or str(err.message or err)
    return "no reason (the call succeeds at the parent block)"


def checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
