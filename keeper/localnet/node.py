"""The development node's own methods (balances, code, storage, nonces, impersonation), for the
local market's tooling only: anvil names them `anvil_*`, Hardhat Network `hardhat_*`.

The node is recognised by `web3_clientVersion`; any other node fails at once, naming itself,
instead of letting a deploy go on and fail later for a reason that hides the cause.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from keeper.chain import raw
from keeper.errors import ToolchainError

# web3_clientVersion prefix (lower case) -> prefix of the node's own methods
PREFIXES = {"anvil": "anvil", "hardhatnetwork": "hardhat"}


@lru_cache(maxsize=32)
def _client(uri: str, version: str) -> str:
    name = version.split("/", 1)[0].lower()
    if name not in PREFIXES:
        raise ToolchainError(
            f"the node at {uri} is {version!r}: the local market needs anvil or Hardhat Network "
            "(their anvil_* / hardhat_* methods set balances, code and storage). Fix: start "
            "`anvil` or `npx hardhat node`, or use a network whose contracts are deployed"
        )
    return PREFIXES[name]


class DevNode:
    """The running anvil or Hardhat node behind `w3`."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        version = str(raw.call(w3, "web3_clientVersion", []))
        self.prefix = _client(str(getattr(w3.provider, "endpoint_uri", "")), version)
        self.version = version

    def _call(self, method: str, params: list[Any]) -> Any:
        return raw.call(self.w3, f"{self.prefix}_{method}", params)

    def set_balance(self, address: str, wei: int) -> None:
        self._call("setBalance", [Web3.to_checksum_address(address), hex(wei)])

    def set_code(self, address: str, code: str | bytes) -> None:
        data = code if isinstance(code, str) else "0x" + code.hex()
        self._call("setCode", [Web3.to_checksum_address(address), data])

    def set_storage(self, address: str, slot: int, value: int | bytes) -> None:
        word = value if isinstance(value, bytes) else value.to_bytes(32, "big")
        target = Web3.to_checksum_address(address)
        self._call("setStorageAt", [target, hex(slot), "0x" + word.hex()])

    def set_nonce(self, address: str, nonce: int) -> None:
        self._call("setNonce", [Web3.to_checksum_address(address), hex(nonce)])

    def impersonate(self, address: str) -> None:
        self._call("impersonateAccount", [Web3.to_checksum_address(address)])

    def stop_impersonating(self, address: str) -> None:
        self._call("stopImpersonatingAccount", [Web3.to_checksum_address(address)])

    def relocate(self, contract: Contract, target: str, slots: tuple[int, ...] = ()) -> Contract:
        """Give `target` the runtime code of the deployed `contract` and the storage `slots`
        its constructor wrote (mapping entries are not copied: relocate straight after the
        constructor). Immutables holding the contract's own address (Uniswap's NoDelegateCall)
        are rewritten to `target`. Returns the contract bound at `target`."""
        src = bytes.fromhex(contract.address[2:])
        dst = Web3.to_checksum_address(target)
        code = bytes(self.w3.eth.get_code(contract.address)).replace(src, bytes.fromhex(dst[2:]))
        self.set_code(dst, code)
        for slot in slots:
            word = bytes(self.w3.eth.get_storage_at(contract.address, slot))
            if any(word):
                self.set_storage(dst, slot, word.rjust(32, b"\0"))
        return self.w3.eth.contract(address=dst, abi=contract.abi)


def mapping_slot(key: int | str, slot: int) -> int:
    """Storage slot of `mapping[key]` for a mapping declared at `slot` (value-type keys)."""
    k = int(key, 16) if isinstance(key, str) else key
    return int.from_bytes(keccak(k.to_bytes(32, "big") + slot.to_bytes(32, "big")), "big")
