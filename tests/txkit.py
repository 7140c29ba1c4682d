"""Raw transactions for the sender tests and the fault suite: a signed 1-wei transfer at a
chosen nonce, and one persisted in the ledger behind a nonce gap."""

from __future__ import annotations

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from web3 import Web3

from keeper.ledger import Ledger, NewTx

GWEI = 10**9
SINK = "0x000000000000000000000000000000000000dEaD"


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
