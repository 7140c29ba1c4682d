"""Tracking one in-flight transaction until it is final: receipts (on every endpoint when the
current one shows none), confirmations, reorgs, drops, replacement every `replace_after_blocks`,
the private relay's public fallback, the deadline's no-op cancel, and a nonce lost to another
transaction. The Sender mixes it in; it signs and broadcasts through the Sender's methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.types import RPCEndpoint

from keeper.chain.rpc import receipt_from_any
from keeper.errors import RpcUnavailable, SendError, TxLost
from keeper.ledger import Ledger, TxStatus
from keeper.send.classify import SendFailure
from keeper.send.fees import Fees
from keeper.send.flight import Flight, hex0x
from keeper.send.nonce import NonceManager
from keeper.send.types import ExecutionResult, SenderSettings, TxRequest

if TYPE_CHECKING:
    from keeper.metrics import Metrics

# a used nonce with none of our receipts on any endpoint is lost only after this many looks:
# a node a few blocks behind shows the receipt late
LOST_AFTER_CHECKS = 4
# RpcUnavailable: every endpoint failed the send; it may still have propagated
NETWORK_ERRORS = (requests.RequestException, OSError, TimeoutError, RpcUnavailable)
RPC_ERRORS = (Web3Exception, ValueError)


class Tracker:
    """The tracking half of the Sender."""

    w3: Web3
    ledger: Ledger
    settings: SenderSettings
    address: str
    nonces: NonceManager
    metrics: Metrics | None
    _wait: Callable[[int], int]

    def _attempt(self, flight: Flight, fees: Fees, *, cancel: bool = False) -> None:
        raise NotImplementedError

    def _next_fees(self, flight: Flight) -> Fees:
        raise NotImplementedError

    def _fields(self, req: TxRequest, nonce: int, gas_limit: int) -> dict[str, Any]:
        raise NotImplementedError

    def _broadcast(self, flight: Flight, raw: bytes, tx_hash: str) -> SendFailure | None:
        raise NotImplementedError

    def _count(self, what: str, vault: str | None) -> None:
        raise NotImplementedError


    def _poll_for_block(self, target: int) -> int:
        deadline = time.monotonic() + self.settings.block_timeout_s
        while True:
            head = int(self.w3.eth.block_number)
            if head >= target:
                return head
            if time.monotonic() > deadline:
                raise SendError(
                    f"no new block for {self.settings.block_timeout_s:g} s (head "
                    f"{head}): node stalled? the tx stays pending in the ledger",
                    key="block",
                )
            time.sleep(self.settings.poll_interval_s)

    def _find_receipt(self, flight: Flight) -> Any | None:
        """A receipt of any of our hashes; asks every endpoint when the current one shows
        none (a lagging node hides a mined transaction)."""
        for tx_hash in reversed(flight.raws):
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
        return receipt_from_any(self.w3, list(reversed(flight.raws)))

    def _track(self, flight: Flight) -> ExecutionResult:
        start = head = int(self.w3.eth.block_number)
        while True:
            if flight.lease is not None and flight.lease.lost:
                flight.lease.check()  # raises LeaseLost: the new holder resumes this tx
            if self._observe(flight, head):
                self._note_pending_age(flight, 0)
                return ExecutionResult.from_row(self.ledger.get_tx(flight.tx_id))
            self._note_pending_age(flight, head - (flight.first_sent_block or head))
            if head - start >= self.settings.max_wait_blocks:
                raise SendError(
                    f"tx {flight.tx_id} (nonce {flight.nonce}) not confirmed after "
                    f"{head - start} blocks; left pending in the ledger",
                    key="send",
                )
            head = self._wait(head + 1)

    def _observe(self, flight: Flight, head: int) -> bool:
        """One look at the chain. True when the tx is final (confirmed or reverted)."""
        receipt = self._find_receipt(flight)
        if receipt is not None:
            return self._on_receipt(flight, receipt, head)
        if flight.mined is not None:
            self._on_reorg(flight, f"receipt of {flight.mined[0]} is gone")
            return False
        if int(self.w3.eth.get_transaction_count(self.address, "latest")) > flight.nonce:  # type: ignore[arg-type]
            return self._on_nonce_taken(flight)
        if self._expired(flight, head):
            self._cancel_expired(flight)
        elif flight.private and self._fallback_due(flight, head):
            flight.private = False
            self.ledger.add_event(flight.tx_id, "public_fallback", f"after {head} blocks")
            self._rebroadcast(flight, "not included via the private endpoint")
        elif not flight.private and not self._in_pool(flight.last_hash):
            self._rebroadcast(flight, "dropped from the pool")
        elif head - flight.last_sent_block >= self.settings.replace_after_blocks:
            self._attempt(flight, self._next_fees(flight), cancel=bool(flight.cancel_hashes))
            self.ledger.add_event(flight.tx_id, "replaced", flight.last_hash)
            self._count("replacement", flight.vault)
        return False

    def _note_pending_age(self, flight: Flight, blocks: int) -> None:
        if self.metrics is not None:
            self.metrics.pending_age(flight.vault, blocks)

    def _expired(self, flight: Flight, head: int) -> bool:
        if flight.deadline_ts is None or flight.cancel_hashes:
            return False
        return int(self.w3.eth.get_block(head)["timestamp"]) > flight.deadline_ts

    def _cancel_expired(self, flight: Flight) -> None:
        """The call's deadline passed, so it can only revert: replace it by a 0-value
        self-transfer at the same nonce (bumped), which frees the nonce for 21,000 gas."""
        self.ledger.add_event(flight.tx_id, "deadline_passed", f"deadline {flight.deadline_ts}")
        flight.fields = self._fields(TxRequest(to=self.address), flight.nonce, 21_000)
        self._attempt(flight, self._next_fees(flight), cancel=True)

    def _on_receipt(self, flight: Flight, receipt: Any, head: int) -> bool:
        tx_hash, block = hex0x(receipt["transactionHash"]), int(receipt["blockNumber"])
        block_hash = hex0x(receipt["blockHash"])
        if flight.mined != (tx_hash, block, block_hash):
            flight.mined = (tx_hash, block, block_hash)
            self.ledger.set_tx_status(
                flight.tx_id,
                TxStatus.MINED,
                mined_hash=tx_hash,
                receipt_block=block,
                receipt_block_hash=block_hash,
                receipt_status=int(receipt["status"]),
                gas_used=int(receipt["gasUsed"]),
                effective_gas_price_wei=int(receipt["effectiveGasPrice"]),
            )
        if head - block + 1 < self.settings.confirmations:
            return False
        canonical = hex0x(self.w3.eth.get_block(block)["hash"])
        if canonical != block_hash:
            self._on_reorg(flight, f"block {block} hash changed")
            return False
        ok = int(receipt["status"]) == 1
        final = TxStatus.CANCELLED if tx_hash in flight.cancel_hashes else TxStatus.CONFIRMED
        self.ledger.set_tx_status(
            flight.tx_id,
            final if ok else TxStatus.FAILED,
            error=None if ok else f"reverted ({self._revert_reason(tx_hash)}): not retried",
        )
        return True

    def _revert_reason(self, tx_hash: str) -> str:
        """Name the revert (the vault's custom error) by replaying the transaction with
        eth_call at its block, which every node has (the callTracer is not: Hardhat and many
        providers refuse it). The block's end state holds whatever made it revert earlier in
        the block (another keeper, a price move); without revert data, the node's message."""
        from keeper.chain.errors import name_revert, revert_data

        try:
            tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            call = {
                "from": tx["from"],
                "to": tx["to"],
                "data": hex0x(tx["input"]),
                "value": hex(tx["value"]),
                "gas": hex(tx["gas"]),
            }
            resp = self.w3.provider.make_request(
                RPCEndpoint("eth_call"), [call, hex(tx["blockNumber"])])
        except (*NETWORK_ERRORS, *RPC_ERRORS, TransactionNotFound):
            return "receipt status 0"
        error = resp.get("error")
        if error is None:
            return "receipt status 0; the call no longer reverts at its block"
        return name_revert(revert_data(error)) or str(error.get("message", "receipt status 0"))

    def _on_reorg(self, flight: Flight, why: str) -> None:
        """A reorg removed our receipt: back to pending and rebroadcast the landed bytes."""
        assert flight.mined is not None
        mined_hash = flight.mined[0]
        flight.mined = None
        self.ledger.set_tx_status(
            flight.tx_id,
            TxStatus.PENDING,
            error=f"reorg: {why}",
            mined_hash=None,
            receipt_block=None,
            receipt_block_hash=None,
            receipt_status=None,
            gas_used=None,
            effective_gas_price_wei=None,
        )
        raw = flight.raws[mined_hash]
        self._broadcast(flight, raw, mined_hash)

    def _on_nonce_taken(self, flight: Flight) -> bool:
        """The nonce is used but none of our hashes has a receipt: re-check once (receipt lag),
        then it is lost to another transaction."""
        flight.lost_checks += 1
        if flight.lost_checks < LOST_AFTER_CHECKS:
            return False
        self.ledger.set_tx_status(
            flight.tx_id, TxStatus.DROPPED, error="nonce consumed by a transaction that is not ours"
        )
        self.nonces.sync()
        raise TxLost(
            f"tx {flight.tx_id}: nonce {flight.nonce} was used by another transaction", key="nonce"
        )

    def _fallback_due(self, flight: Flight, head: int) -> bool:
        """A tx without a swap may go public after `private_fallback_blocks`."""
        first = flight.first_sent_block if flight.first_sent_block is not None else head
        return not flight.private_only and head - first >= self.settings.private_fallback_blocks

    def _in_pool(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def _rebroadcast(self, flight: Flight, why: str) -> None:
        """The node forgot the tx: send the same signed bytes again (bump if refused)."""
        self.ledger.add_event(flight.tx_id, "rebroadcast", f"{flight.last_hash}: {why}")
        kind = self._broadcast(flight, flight.raws[flight.last_hash], flight.last_hash)
        if kind in (SendFailure.UNDERPRICED, SendFailure.REPLACEMENT_UNDERPRICED):
            self._attempt(flight, self._next_fees(flight), cancel=bool(flight.cancel_hashes))
