"""Sender: sign (EIP-1559, eth-account), persist, broadcast, replace, confirm, survive reorgs.

Order of every attempt: sign -> persist (nonce, hash, fees, raw bytes) in the ledger -> broadcast.
A restart therefore finds every attempt it may have sent and `recover_pending()` resolves them
instead of sending twice (K3). Replacements keep the nonce and raise both fee fields by
>= 12.5% (K4) every `replace_after_blocks` (K5) until the cap, then raise FeeCapExceeded and
leave the tx pending (B14). Block waits go through an injectable `wait_for_block(target) -> head`
so tests can drive a chain with automine off.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.types import RPCEndpoint, TxParams
from web3.types import Wei as Web3Wei

from keeper.errors import FeeCapExceeded, Halt, NonceError, RpcUnavailable, SendError, TxLost
from keeper.ledger import Ledger, NewTx, TxRow, TxStatus
from keeper.send.classify import SendFailure, classify
from keeper.send.fees import Fees, replacement_fees, suggest_fees
from keeper.send.flight import Flight, hex0x
from keeper.send.nonce import NonceManager
from keeper.send.types import Attempt, ExecutionResult, SenderSettings, TxRequest
from keeper.units import Wei

__all__ = ["Attempt", "ExecutionResult", "Sender", "SenderSettings", "TxRequest"]

log = logging.getLogger("keeper.send")
WaitForBlock = Callable[[int], int]
# RpcUnavailable: every endpoint failed the send; it may still have propagated (A8)
_NETWORK_ERRORS = (requests.RequestException, OSError, TimeoutError, RpcUnavailable)
_RPC_ERRORS = (Web3Exception, ValueError)


class Sender:
    """Sends transactions for one account on one chain."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        ledger: Ledger,
        settings: SenderSettings,
        *,
        nonces: NonceManager | None = None,
        wait_for_block: WaitForBlock | None = None,
        broadcast_w3: Web3 | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.ledger = ledger
        self.settings = settings
        self.address = account.address
        self.nonces = nonces or NonceManager(
            ledger,
            settings.chain_id,
            account.address,
            lambda block: int(w3.eth.get_transaction_count(account.address, block)),  # type: ignore[arg-type]
        )
        self._wait = wait_for_block or self._poll_for_block
        self.owner_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._broadcast_w3 = broadcast_w3 or w3
        self._has_private = broadcast_w3 is not None and broadcast_w3 is not w3

    def close(self) -> None:
        self.nonces.close()

    # ------------------------------------------------------------ public

    def send(self, req: TxRequest) -> ExecutionResult:
        """Sign, persist, broadcast and track `req` until confirmed (or raise SendError).

        With `vault` and `epoch_key` set, the ledger's epoch lock makes sure only one keeper
        instance (sharing the ledger) executes that epoch (G39); an open tx for the epoch is
        resumed, a confirmed one refused."""
        self._check_chain()
        with self._epoch_lock(req):
            existing = self._existing_for_epoch(req)
            if existing is not None:
                return self._finish_epoch(
                    req, self._track(self._flight_from_row(existing, req.emergency))
                )
            gas_limit = req.gas_limit or self._estimate(req)
            cap = min(self._cap(req), self._budget_cap(gas_limit))
            fees = self._market_fees(cap, strict=True)
            flight = self._open(req, gas_limit, cap)
            if req.deadline_ts is not None:
                flight.deadline_ts = req.deadline_ts
                self.ledger.add_event(flight.tx_id, "deadline", str(req.deadline_ts))
            self._attempt(flight, fees)
            return self._finish_epoch(req, self._track(flight))

    @contextmanager
    def _epoch_lock(self, req: TxRequest) -> Iterator[None]:
        if not (req.vault and req.epoch_key):
            yield
            return
        ttl = self.settings.epoch_lock_ttl_s
        if not self.ledger.acquire_epoch(req.vault, req.epoch_key, self.owner_id, ttl):
            held = self.ledger.epoch_owner(req.vault, req.epoch_key)
            what = (
                "was already executed"
                if held and held[2]
                else (f"is being executed by another keeper instance ({held[0] if held else '?'})")
            )
            raise SendError(
                f"epoch {req.epoch_key} of vault {req.vault} {what}: not sending",
                vault=req.vault,
                key="epoch",
            )
        try:
            yield
        except BaseException:
            self.ledger.finish_epoch(req.vault, req.epoch_key, self.owner_id, done=False)
            raise

    def _finish_epoch(self, req: TxRequest, result: ExecutionResult) -> ExecutionResult:
        if req.vault and req.epoch_key:
            self.ledger.finish_epoch(req.vault, req.epoch_key, self.owner_id, done=result.ok)
        return result

    def cancel(self, tx_id: int) -> ExecutionResult:
        """B15: replace a pending tx by a 0-value self-transfer at the same nonce (bumped)."""
        self._check_chain()
        row = self.ledger.get_tx(tx_id)
        if row.status not in (TxStatus.PENDING,) or not row.attempts:
            raise SendError(f"tx {tx_id} is {row.status}: nothing to cancel", key="cancel")
        flight = self._flight_from_row(row, emergency=False)
        flight.fields = self._fields(TxRequest(to=self.address), row.nonce, 21_000)
        self.ledger.add_event(tx_id, "cancelling", f"nonce={row.nonce}")
        self._attempt(flight, self._next_fees(flight), cancel=True)
        return self._track(flight)

    def fill_gaps(self) -> list[ExecutionResult]:
        """B12: a 0-value self-transfer (NOOP) at every nonce gap the resync found."""
        self._check_chain()
        results = []
        for nonce in self.nonces.sync().gaps:
            cap = self.settings.max_fee_wei
            req = TxRequest(to=self.address, gas_limit=21_000, purpose="noop")
            flight = self._open(req, 21_000, cap, nonce=nonce)
            self._attempt(flight, self._market_fees(cap, strict=True))
            results.append(self._track(flight))
        return results

    def recover_pending(self) -> list[ExecutionResult]:
        """On restart: resolve every ledger-pending tx of this account; never re-sign a new
        nonce for them. Returns their final results."""
        results = self.fill_gaps()
        for row in self.ledger.pending_txs(self.settings.chain_id, self.address):
            if not row.attempts:
                self.ledger.set_tx_status(
                    row.id, TxStatus.CANCELLED, error="crashed before signing; nothing was sent"
                )
                continue
            self.ledger.add_event(row.id, "recovering", f"nonce={row.nonce}")
            result = self._track(self._flight_from_row(row, emergency=False))
            if row.vault and row.epoch_key:
                self.ledger.finish_epoch(row.vault, row.epoch_key, None, done=result.ok)
            results.append(result)
        self.nonces.sync()
        return results

    # ------------------------------------------------------------ setup helpers

    def _check_chain(self) -> None:
        """K9/F37: refuse to sign for a node on another chain."""
        got = int(self.w3.eth.chain_id)
        if got != self.settings.chain_id:
            raise SendError(
                f"refusing to sign: the node reports chain id {got} but the keeper is "
                f"configured for {self.settings.chain_id}: check networks.*.rpc_urls",
                key="chain_id",
            )

    def _cap(self, req: TxRequest) -> int:
        s = self.settings
        return (s.emergency_max_fee_wei or s.max_fee_wei) if req.emergency else s.max_fee_wei

    def _budget_cap(self, gas_limit: int) -> int:
        budget = self.settings.budget_wei
        return budget // gas_limit if budget else self.settings.max_fee_wei * 1000

    def _estimate(self, req: TxRequest) -> int:
        tx: TxParams = {"from": self.address, "data": req.data, "value": Web3Wei(req.value_wei)}
        if req.to is not None:
            tx["to"] = Web3.to_checksum_address(req.to)
        try:
            return int(self.w3.eth.estimate_gas(tx)) * 6 // 5  # +20%: state may move
        except _RPC_ERRORS as err:
            raise SendError(
                f"gas estimate failed (the call would revert?): {err}", key=req.purpose
            ) from err

    def _existing_for_epoch(self, req: TxRequest) -> TxRow | None:
        """K14/G39: one tx per (vault, epoch): resume an open one, refuse after a final one."""
        if not (req.vault and req.epoch_key):
            return None
        rows = self.ledger.txs_for_epoch(req.vault, req.epoch_key)
        live = [
            r
            for r in rows
            if r.status not in (TxStatus.FAILED, TxStatus.DROPPED, TxStatus.CANCELLED)
        ]
        if live and live[-1].status == TxStatus.CONFIRMED:
            raise SendError(
                f"epoch {req.epoch_key} of vault {req.vault} was already executed "
                f"(tx {live[-1].mined_hash})",
                vault=req.vault,
                key="epoch",
            )
        return live[-1] if live else None

    def _fields(self, req: TxRequest, nonce: int, gas_limit: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": 2,
            "chainId": self.settings.chain_id,
            "nonce": nonce,
            "gas": gas_limit,
            "value": req.value_wei,
            "data": hex0x(req.data),
        }
        if req.to is not None:
            out["to"] = Web3.to_checksum_address(req.to)
        return out

    def _open(self, req: TxRequest, gas_limit: int, cap: int, nonce: int | None = None) -> Flight:
        """Reserve a nonce (or take `nonce`), persist the tx row, and make sure the nonce is
        not already mined (B13) before anything is signed; one retry after a resync."""
        for _ in range(2):
            with self.nonces.lock:
                n = self.nonces.reserve() if nonce is None else nonce
                tx_id = self.ledger.create_tx(self._new_tx(req, n, gas_limit))
            try:
                self.nonces.check_unused(n)
            except NonceError as err:
                self.ledger.set_tx_status(tx_id, TxStatus.DROPPED, error=f"{err.message}")
                if nonce is not None:
                    raise
                continue
            if req.private_only:
                self.ledger.add_event(tx_id, "private_only")
            return Flight(
                tx_id=tx_id,
                nonce=n,
                fields=self._fields(req, n, gas_limit),
                cap_wei=cap,
                private=self._has_private,
                private_only=req.private_only,
            )
        raise NonceError("nonce still in use after a resync", key="nonce")

    def _new_tx(self, req: TxRequest, nonce: int, gas_limit: int) -> NewTx:
        return NewTx(
            chain_id=self.settings.chain_id,
            sender=self.address,
            nonce=nonce,
            purpose=req.purpose,
            gas_limit=gas_limit,
            to_addr=req.to,
            value_wei=req.value_wei,
            data=hex0x(req.data),
            vault=req.vault,
            epoch_key=req.epoch_key,
        )

    def _flight_from_row(self, row: TxRow, emergency: bool) -> Flight:
        req = TxRequest(
            to=row.to_addr,
            data=bytes.fromhex(row.data[2:]),
            value_wei=row.value_wei,
            gas_limit=row.gas_limit,
            emergency=emergency,
        )
        flight = Flight(
            tx_id=row.id,
            nonce=row.nonce,
            fields=self._fields(req, row.nonce, row.gas_limit),
            cap_wei=min(self._cap(req), self._budget_cap(row.gas_limit)),
            accepted=True,
            last_sent_block=int(self.w3.eth.block_number),
        )
        for a in row.attempts:
            flight.raws[a.hash] = a.raw_tx
        events = self.ledger.events(row.id)
        flight.cancel_hashes = {d for k, d in events if k == "cancel_signed"}
        flight.private_only = any(k == "private_only" for k, _ in events)
        deadlines = [int(d) for k, d in events if k == "deadline"]
        flight.deadline_ts = deadlines[-1] if deadlines else None
        flight.private = self._has_private and not any(k == "public_fallback" for k, _ in events)
        if row.attempts:
            last = row.attempts[-1]
            flight.fees = Fees(
                max_fee_wei=Wei(last.max_fee_wei), priority_fee_wei=Wei(last.priority_fee_wei)
            )
        if row.mined_hash and row.receipt_block is not None and row.receipt_block_hash:
            flight.mined = (row.mined_hash, row.receipt_block, row.receipt_block_hash)
        return flight

    # ------------------------------------------------------------ fees, signing, broadcast

    def _market_fees(self, cap_wei: int | None, *, strict: bool) -> Fees:
        s = self.settings
        try:
            history = self.w3.eth.fee_history(s.fee_history_blocks, "latest", [s.reward_percentile])
        except _RPC_ERRORS as err:
            raise SendError(f"eth_feeHistory failed: {err}", key="fees") from err
        return suggest_fees(history, cap_wei=cap_wei if strict else None, min_tip_wei=s.min_tip_wei)

    def _attempt(self, flight: Flight, fees: Fees, *, cancel: bool = False) -> None:
        """Sign at `fees`, persist, broadcast; on an underpriced answer bump and retry."""
        for _ in range(32):  # bounded: each loop raises fees by >= 12.5% or exits
            tx = {**flight.fields, **fees.as_tx_fields()}
            if tx["chainId"] != self.settings.chain_id:
                raise SendError("refusing to sign: chainId mismatch", key="chain_id")
            signed = self.account.sign_transaction(tx)
            tx_hash, raw = hex0x(signed.hash), bytes(signed.raw_transaction)
            if tx_hash not in flight.raws:
                self.ledger.add_attempt(
                    flight.tx_id, tx_hash, fees.max_fee_wei, fees.priority_fee_wei, raw
                )
            flight.raws[tx_hash] = raw
            flight.fees = fees
            if cancel and tx_hash not in flight.cancel_hashes:
                flight.cancel_hashes.add(tx_hash)
                self.ledger.add_event(flight.tx_id, "cancel_signed", tx_hash)
            kind = self._broadcast(flight, raw, tx_hash)
            if kind not in (SendFailure.UNDERPRICED, SendFailure.REPLACEMENT_UNDERPRICED):
                return
            fees = self._next_fees(flight)
        raise SendError("gave up re-pricing after 32 attempts", key="fees")

    def _next_fees(self, flight: Flight) -> Fees:
        assert flight.fees is not None
        fresh = None
        if self.settings.reprice_from_market:
            try:
                fresh = self._market_fees(None, strict=False)
            except SendError:
                fresh = None  # D25: fee data unavailable -> the bump alone
        try:
            return replacement_fees(flight.fees, fresh, self.settings.bump_percent, flight.cap_wei)
        except FeeCapExceeded as err:
            self.ledger.add_event(flight.tx_id, "fee_cap", err.message)
            log.error("ALERT gas ceiling reached for tx %d (nonce %d): %s; not bumping further",
                      flight.tx_id, flight.nonce, err.message)
            raise FeeCapExceeded(
                f"{err.message} (tx {flight.tx_id}, nonce {flight.nonce}, "
                f"{len(flight.raws)} attempts; left pending)",
                key="gas.max_fee_gwei",
            ) from err

    def _broadcast(self, flight: Flight, raw: bytes, tx_hash: str) -> SendFailure | None:
        """Broadcast one raw tx and react to the node's answer (see classify.REACTION)."""
        flight.last_sent_block = int(self.w3.eth.block_number)
        if flight.first_sent_block is None:
            flight.first_sent_block = flight.last_sent_block
        endpoint = self._broadcast_w3 if flight.private else self.w3
        try:
            endpoint.eth.send_raw_transaction(raw)
        except _NETWORK_ERRORS as err:  # A8: it may have propagated; tracking reconciles
            self.ledger.add_event(flight.tx_id, "broadcast_unsure", f"{tx_hash}: {err}")
            flight.accepted = True
            return None
        except _RPC_ERRORS as err:
            return self._on_send_error(flight, tx_hash, err)
        flight.accepted = True
        self.ledger.add_event(flight.tx_id, "broadcast", tx_hash)
        return None

    def _on_send_error(self, flight: Flight, tx_hash: str, err: Exception) -> SendFailure:
        kind = classify(err)
        self.ledger.add_event(flight.tx_id, f"rejected:{kind}", f"{tx_hash}: {err}")
        if kind == SendFailure.ALREADY_KNOWN:
            flight.accepted = True
            return kind
        if kind in (SendFailure.UNDERPRICED, SendFailure.REPLACEMENT_UNDERPRICED):
            return kind
        mined_anyway = (SendFailure.NONCE_TOO_LOW, SendFailure.UNKNOWN)
        if kind in mined_anyway and self._find_receipt(flight) is not None:
            # one of our attempts is mined (an earlier one; or this one, which Hardhat's
            # automine mines and then answers with an error when it reverts): tracking records it
            flight.accepted = True
            return kind
        self._fail(flight, kind, err)

    def _fail(self, flight: Flight, kind: SendFailure, err: Exception) -> NoReturn:
        status = TxStatus.FAILED if not flight.accepted else TxStatus.PENDING
        if kind in (SendFailure.NONCE_TOO_LOW, SendFailure.NONCE_TOO_HIGH):
            self.ledger.set_tx_status(
                flight.tx_id,
                TxStatus.DROPPED if not flight.accepted else status,
                error=f"{kind}: {err}",
            )
            self.nonces.sync()
            raise NonceError(
                f"{kind} for nonce {flight.nonce}: nonces resynced",
                key="nonce",
            ) from err
        self.ledger.set_tx_status(flight.tx_id, status, error=f"{kind}: {err}")
        if not flight.accepted:
            self.nonces.release(flight.nonce)
        if kind == SendFailure.INSUFFICIENT_FUNDS:
            raise Halt(f"keeper account {self.address} cannot pay for gas: fund it", key="gas")
        raise SendError(f"transaction rejected ({kind}): {err}", key="send") from err

    # ------------------------------------------------------------ tracking

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
        for tx_hash in reversed(flight.raws):
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
        return None

    def _track(self, flight: Flight) -> ExecutionResult:
        start = head = int(self.w3.eth.block_number)
        while True:
            if self._observe(flight, head):
                return ExecutionResult.from_row(self.ledger.get_tx(flight.tx_id))
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
        if int(self.w3.eth.get_transaction_count(self.address, "latest")) > flight.nonce:
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
        return False

    def _expired(self, flight: Flight, head: int) -> bool:
        if flight.deadline_ts is None or flight.cancel_hashes:
            return False
        return int(self.w3.eth.get_block(head)["timestamp"]) > flight.deadline_ts

    def _cancel_expired(self, flight: Flight) -> None:
        """K6/B15: the call's deadline passed, so it can only revert: replace it by a 0-value
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
        except (*_NETWORK_ERRORS, *_RPC_ERRORS, TransactionNotFound):
            return "receipt status 0"
        error = resp.get("error")
        if error is None:
            return "receipt status 0; the call no longer reverts at its block"
        return name_revert(revert_data(error)) or str(error.get("message", "receipt status 0"))

    def _on_reorg(self, flight: Flight, why: str) -> None:
        """C19: a reorg removed our receipt: back to pending and rebroadcast the landed bytes."""
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
        if flight.lost_checks < 2:
            return False
        self.ledger.set_tx_status(
            flight.tx_id, TxStatus.DROPPED, error="nonce consumed by a transaction that is not ours"
        )
        self.nonces.sync()
        raise TxLost(
            f"tx {flight.tx_id}: nonce {flight.nonce} was used by another transaction", key="nonce"
        )

    def _fallback_due(self, flight: Flight, head: int) -> bool:
        """K11: a tx without a swap may go public after `private_fallback_blocks`."""
        first = flight.first_sent_block if flight.first_sent_block is not None else head
        return not flight.private_only and head - first >= self.settings.private_fallback_blocks

    def _in_pool(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def _rebroadcast(self, flight: Flight, why: str) -> None:
        """B11: the node forgot the tx: send the same signed bytes again (bump if refused)."""
        self.ledger.add_event(flight.tx_id, "rebroadcast", f"{flight.last_hash}: {why}")
        kind = self._broadcast(flight, flight.raws[flight.last_hash], flight.last_hash)
        if kind in (SendFailure.UNDERPRICED, SendFailure.REPLACEMENT_UNDERPRICED):
            self._attempt(flight, self._next_fees(flight), cancel=bool(flight.cancel_hashes))


def private_endpoint(cfg: Any) -> Web3 | None:
    """The private send endpoint of a KeeperConfig's network (K11), for `broadcast_w3`."""
    url = cfg.network.private_rpc_url
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10})) if url else None
