"""Chain control and raw transactions for the sender tests and the fault suite: mining with
stuck blocks, a signed 1-wei transfer at a chosen nonce, and one persisted in the ledger behind
a nonce gap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from web3 import Web3

from keeper.app import Keeper
from keeper.ledger import Ledger, NewTx
from keeper.models import RebalancePlan

GWEI = 10**9
SINK = "0x000000000000000000000000000000000000dEaD"
DEFAULT_GAS_LIMIT = 30_000_000


@dataclass
class ChainCtl:
    w3: Web3
    filler: str = ""
    filler_tip_gwei: int = 300  # the filler outbids us; it also sets the fee history's tips
    stuck_limit: int | None = None
    mined: int = 0

    def rpc(self, method: str, *params: object) -> Any:
        resp = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in resp, resp
        return resp["result"]

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    def stick(self, our_gas_limit: int) -> None:
        """Every block from now on holds a high-tip filler that leaves too little gas for us."""
        self.stuck_limit = our_gas_limit + 10_000
        self.rpc("evm_setBlockGasLimit", hex(self.stuck_limit))

    def unstick(self) -> None:
        self.stuck_limit = None
        self.rpc("evm_setBlockGasLimit", hex(DEFAULT_GAS_LIMIT))

    def mine(self) -> int:
        if self.stuck_limit is not None:
            self.rpc(
                "eth_sendTransaction",
                {
                    "from": self.filler,
                    "to": self.filler,
                    "value": "0x0",
                    "gas": hex(21_000),  # fits any stuck limit; leaves < our_gas_limit
                    "maxFeePerGas": hex(3 * self.filler_tip_gwei * GWEI),
                    "maxPriorityFeePerGas": hex(self.filler_tip_gwei * GWEI),
                },
            )
        self.rpc("evm_mine")
        self.mined += 1
        return int(self.w3.eth.block_number)

    def waiter(self, before: Callable[[int], None] | None = None) -> Callable[[int], int]:
        calls = [0]

        def wait(target: int) -> int:
            calls[0] += 1
            if before is not None:
                before(calls[0])
            head = int(self.w3.eth.block_number)
            while head < target:
                head = self.mine()
            return head

        return wait

    def sent_count(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(address, "latest"))  # type: ignore[arg-type]

    def pool(self, address: str) -> dict[str, Any]:
        content = self.rpc("txpool_content")
        return dict(content["pending"].get(address.lower(), {}))

    def pool_size(self) -> int:
        status = self.rpc("txpool_status")
        return int(status["pending"], 16) + int(status["queued"], 16)



def sign_transfer(account: LocalAccount, nonce: int, value: int = 1) -> SignedTransaction:
    """A plain transfer to SINK at `nonce` (10 gwei cap, 1 gwei tip) on the local chain."""
    return account.sign_transaction(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": nonce,
            "to": SINK,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": 10 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
    )


def persist_gapped_tx(w3: Web3, ledger: Ledger, account: LocalAccount) -> str:
    """Sign a 1-wei transfer at nonce 1, record it in `ledger`, broadcast it (the node queues it
    behind the gap) and return its hash."""
    signed = sign_transfer(account, 1)
    tx_id = ledger.create_tx(
        NewTx(chain_id=31337, sender=account.address, nonce=1, purpose="test", gas_limit=21_000,
              to_addr=SINK, value_wei=1)
    )
    tx_hash = "0x" + bytes(signed.hash).hex()
    ledger.add_attempt(tx_id, tx_hash, 10 * GWEI, GWEI, bytes(signed.raw_transaction))
    w3.eth.send_raw_transaction(signed.raw_transaction)
    return tx_hash


def planned_calldata(keeper: Keeper) -> str:
    """The calldata the keeper would send for its first vault right now (read, decide, plan)."""
    vcfg = keeper.cfg.vaults[0]
    snap = keeper._read([vcfg])
    state = snap.vaults[0]
    decision = keeper.decide(snap, vcfg, state)
    outcome = keeper._plan_all(snap, [(vcfg, state, decision)])[vcfg.name]
    assert isinstance(outcome, RebalancePlan), outcome
    return "0x" + outcome.calldata.hex()
