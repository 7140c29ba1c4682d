"""Sender: sign (EIP-1559, eth-account), persist, broadcast, replace, confirm, survive reorgs.

Order of every attempt: sign -> persist (nonce, hash, fees, raw bytes) in the ledger -> broadcast.
A restart therefore finds every attempt it may have sent and `recover_pending()` resolves them
instead of sending twice. Replacements keep the nonce and raise both fee fields by
>= 12.5% every `replace_after_blocks` until the cap, then raise FeeCapExceeded and
leave the tx pending. Block waits go through an injectable `wait_for_block(target) -> head`
so tests can drive a chain with automine off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxParams
from web3.types import Wei as Web3Wei

import keeper.send.lease as leases
from keeper.chain.rpc import failover_of
from keeper.errors import (
    EpochTaken,
    FeeCapExceeded,
    Halt,
    LeaseLost,
    NonceError,
    SendError,
)
from keeper.ledger import Ledger, NewTx, TxRow, TxStatus
from keeper.send.classify import SendFailure, classify
from keeper.send.fees import Fees, replacement_fees, suggest_fees
from keeper.send.flight import Flight, hex0x
from keeper.send.lease import Lease
from keeper.send.nonce import NonceManager
from keeper.send.track import NETWORK_ERRORS, RPC_ERRORS, Tracker
from keeper.send.types import Attempt, ExecutionResult, SenderSettings, TxRequest
from keeper.store.leases import owner_id
from keeper.units import Wei

if TYPE_CHECKING:
    from keeper.metrics import Metrics

__all__ = ["Attempt", "ExecutionResult", "Sender", "SenderSettings", "TxRequest"]

log = logging.getLogger("keeper.send")
WaitForBlock = Callable[[int], int]
_NETWORK_ERRORS, _RPC_ERRORS = NETWORK_ERRORS, RPC_ERRORS


class Sender(Tracker):
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
        metrics: Metrics | None = None,
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
        self.owner_id = owner_id(f"{id(self):x}")
        self.metrics = metrics
        self._broadcast_w3 = broadcast_w3 or w3
        self._has_private = broadcast_w3 is not None and broadcast_w3 is not w3

    def close(self) -> None:
        self.nonces.close()

    # ------------------------------------------------------------ public

    def send(self, req: TxRequest) -> ExecutionResult:
        """Sign, persist, broadcast and track `req` until confirmed (or raise SendError).

        With `vault` and `epoch_key` set, the ledger's epoch lock makes sure only one keeper
        instance (sharing the ledger) executes that epoch; an open tx for the epoch is
        resumed, a confirmed one refused."""
        self._check_chain()
        with self._epoch_lease(req) as lease:
            existing = self._existing_for_epoch(req)
            if existing is not None and existing.attempts:
                flight = self._flight_from_row(existing, req.emergency)
                flight.lease = lease
                return self._finish(lease, self._track(flight))
            gas_limit = req.gas_limit or self._estimate(req)
            cap, cap_key = self._cap_for(req, gas_limit)
            fees = self._market_fees(cap, strict=True, cap_key=cap_key)
            flight = self._open(req, gas_limit, cap, nonce=self._epoch_nonce(existing))
            flight.lease, flight.cap_key, flight.vault = lease, cap_key, req.vault
            if req.deadline_ts is not None:
                flight.deadline_ts = req.deadline_ts
                self.ledger.add_event(flight.tx_id, "deadline", str(req.deadline_ts))
            self._attempt(flight, fees)
            return self._finish(lease, self._track(flight))

    @contextmanager
    def _epoch_lease(self, req: TxRequest) -> Iterator[Lease | None]:
        """The (vault, epoch) lease while the request is driven; released on an error (the
        next holder resumes an open transaction), marked done when it executed."""
        if not (req.vault and req.epoch_key):
            yield None
            return
        key = (req.vault, req.epoch_key)
        lease = leases.take(self.ledger, key, self.owner_id, self.settings.epoch_lock_ttl_s)
        if lease is None:
            raise leases.refused(self.ledger, key)
        try:
            yield lease
        except LeaseLost:
            self._count("lease_lost", req.vault)
            log.error("ALERT lease lost: %s/%s", req.vault, req.epoch_key)
            lease.stop()
            raise
        except BaseException:
            lease.release(done=False)
            raise

    def _epoch_nonce(self, existing: TxRow | None) -> int | None:
        """An epoch is bound to one nonce: a row left without any signed attempt (its keeper
        died or lost the lease before signing) is superseded at the same nonce, so even two
        keepers that both think they hold the epoch can execute it at most once."""
        if existing is None:
            return None
        self.ledger.set_tx_status(
            existing.id, TxStatus.CANCELLED, error="superseded before signing: same nonce reused"
        )
        return existing.nonce

    @staticmethod
    def _finish(lease: Lease | None, result: ExecutionResult) -> ExecutionResult:
        if lease is not None:
            lease.release(done=result.ok)
        return result

    def _count(self, what: str, vault: str | None) -> None:
        if self.metrics is not None:
            self.metrics.count(what, vault)

    def cancel(self, tx_id: int) -> ExecutionResult:
        """Replace a pending tx by a 0-value self-transfer at the same nonce (bumped)."""
        self._check_chain()
        row = self.ledger.get_tx(tx_id)
        if row.status not in (TxStatus.PENDING,) or not row.attempts:
            raise SendError(f"tx {tx_id} is {row.status}: nothing to cancel", key="cancel")
        lease = self._take_row_lease(row)
        if lease is None:
            raise leases.refused(self.ledger, leases.row_key(row))
        flight = self._flight_from_row(row, emergency=False)
        flight.lease = lease
        flight.fields = self._fields(TxRequest(to=self.address), row.nonce, 21_000)
        self.ledger.add_event(tx_id, "cancelling", f"nonce={row.nonce}")
        try:
            self._attempt(flight, self._next_fees(flight), cancel=True)
            return self._finish(lease, self._track(flight))
        except BaseException:
            lease.release(done=False)
            raise

    def fill_gaps(self) -> list[ExecutionResult]:
        """A 0-value self-transfer (NOOP) at every nonce gap the resync found."""
        self._check_chain()
        results = []
        for nonce in self.nonces.sync().gaps:
            key = leases.lease_key(None, None, self.address, nonce)
            lease = leases.take(self.ledger, key, self.owner_id, self.settings.epoch_lock_ttl_s)
            if lease is None:
                continue  # another keeper of this account is filling it
            cap = self.settings.max_fee_wei
            req = TxRequest(to=self.address, gas_limit=21_000, purpose="noop")
            try:
                flight = self._open(req, 21_000, cap, nonce=nonce)
                flight.lease = lease
                self._attempt(flight, self._market_fees(cap, strict=True))
                results.append(self._finish(lease, self._track(flight)))
            except BaseException:
                lease.release(done=False)
                raise
        return results

    def recover_pending(self, *, fill_gaps: bool = True) -> list[ExecutionResult]:
        """Resolve every ledger-pending tx of this account that no live keeper drives (on
        start, and by the runtime before each tick: a keeper that died or lost its lease left
        it); never re-sign a new nonce for them. Returns their final results."""
        results = self.fill_gaps() if fill_gaps else []
        rows = self.ledger.pending_txs(self.settings.chain_id, self.address)
        unsigned = 0
        for row in rows:
            lease = self._take_row_lease(row)
            if lease is None:
                continue  # a live keeper drives it
            try:
                result = self._recover_row(row, lease)
            except BaseException:
                lease.release(done=False)
                raise
            if result is None:
                unsigned += 1
            else:
                results.append(result)
        if unsigned and not fill_gaps:  # its nonce may now hold up later transactions
            results.extend(self.fill_gaps())
        elif rows or fill_gaps:
            self.nonces.sync()
        return results

    def _take_row_lease(self, row: TxRow) -> Lease | None:
        ttl = self.settings.epoch_lock_ttl_s
        return leases.take(self.ledger, leases.row_key(row), self.owner_id, ttl)

    def _recover_row(self, row: TxRow, lease: Lease) -> ExecutionResult | None:
        if not row.attempts:
            self.ledger.set_tx_status(
                row.id, TxStatus.CANCELLED, error="crashed before signing; nothing was sent"
            )
            lease.release(done=False)
            return None
        self.ledger.add_event(row.id, "recovering", f"nonce={row.nonce}")
        flight = self._flight_from_row(row, emergency=False)
        flight.lease = lease
        return self._finish(lease, self._track(flight))

    # ------------------------------------------------------------ setup helpers

    def _check_chain(self) -> None:
        """Refuse to sign for a node on another chain."""
        got = int(self.w3.eth.chain_id)
        rpc = failover_of(self.w3)
        if got != self.settings.chain_id and rpc is not None:
            rpc.check_health(self.settings.chain_id)  # drops the node on the wrong chain
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

    def _cap_for(self, req: TxRequest, gas_limit: int) -> tuple[int, str]:
        """The fee cap per gas and the config key that sets it (named in FeeCapExceeded)."""
        fee_cap, budget_cap = self._cap(req), self._budget_cap(gas_limit)
        if budget_cap < fee_cap:
            return budget_cap, "gas.per_rebalance_budget_gwei"
        return fee_cap, "gas.emergency_max_fee_gwei" if req.emergency else "gas.max_fee_gwei"

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
        """One tx per (vault, epoch): resume an open one, refuse after a final one."""
        if not (req.vault and req.epoch_key):
            return None
        rows = self.ledger.txs_for_epoch(req.vault, req.epoch_key)
        live = [
            r
            for r in rows
            if r.status not in (TxStatus.FAILED, TxStatus.DROPPED, TxStatus.CANCELLED)
        ]
        if live and live[-1].sender.lower() != self.address.lower():
            raise SendError(
                f"epoch {req.epoch_key} of vault {req.vault} is in flight from another keeper "
                f"account ({live[-1].sender}): not sending",
                vault=req.vault,
                key="epoch",
            )
        if live and live[-1].status == TxStatus.CONFIRMED:
            raise EpochTaken(
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
        not already mined before anything is signed; one retry after a resync."""
        for _ in range(2):
            if nonce is None:
                n, tx_id = self.nonces.reserve_tx(lambda k: self._new_tx(req, k, gas_limit))
            else:
                n, tx_id = nonce, self.ledger.create_tx(self._new_tx(req, nonce, gas_limit))
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
            owner=self.owner_id,
        )

    def _flight_from_row(self, row: TxRow, emergency: bool) -> Flight:
        req = TxRequest(
            to=row.to_addr,
            data=bytes.fromhex(row.data[2:]),
            value_wei=row.value_wei,
            gas_limit=row.gas_limit,
            emergency=emergency,
        )
        cap, cap_key = self._cap_for(req, row.gas_limit)
        flight = Flight(
            tx_id=row.id,
            nonce=row.nonce,
            fields=self._fields(req, row.nonce, row.gas_limit),
            cap_wei=cap,
            cap_key=cap_key,
            vault=row.vault,
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

    def _market_fees(
        self, cap_wei: int | None, *, strict: bool, cap_key: str = "gas.max_fee_gwei"
    ) -> Fees:
        s = self.settings
        try:
            history = self.w3.eth.fee_history(s.fee_history_blocks, "latest", [s.reward_percentile])
        except _RPC_ERRORS as err:
            raise SendError(f"eth_feeHistory failed: {err}", key="fees") from err
        return suggest_fees(
            history,
            cap_wei=cap_wei if strict else None,
            min_tip_wei=s.min_tip_wei,
            cap_key=cap_key,
        )

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
                fresh = None  # fee data unavailable -> the bump alone
        try:
            return replacement_fees(
                flight.fees,
                fresh,
                self.settings.bump_percent,
                flight.cap_wei,
                min_tip_wei=self.settings.min_tip_wei,
                cap_key=flight.cap_key,
            )
        except FeeCapExceeded as err:
            self.ledger.add_event(flight.tx_id, "fee_cap", err.message)
            self._count("fee_cap", flight.vault)
            log.error("ALERT gas ceiling reached for tx %d (nonce %d): %s; not bumping further",
                      flight.tx_id, flight.nonce, err.message)
            raise FeeCapExceeded(
                f"{err.message} (tx {flight.tx_id}, nonce {flight.nonce}, "
                f"{len(flight.raws)} attempts; left pending)",
                key=flight.cap_key,
            ) from err

    def _broadcast(self, flight: Flight, raw: bytes, tx_hash: str) -> SendFailure | None:
        """Broadcast one raw tx and react to the node's answer (see classify.REACTION). The
        lease is checked in the store first: a keeper that lost it never broadcasts."""
        if flight.lease is not None:
            flight.lease.check()
        flight.last_sent_block = int(self.w3.eth.block_number)
        if flight.first_sent_block is None:
            flight.first_sent_block = flight.last_sent_block
        endpoint = self._broadcast_w3 if flight.private else self.w3
        try:
            endpoint.eth.send_raw_transaction(raw)
        except _NETWORK_ERRORS as err:  # it may have propagated; tracking reconciles
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
        if kind == SendFailure.NONCE_TOO_LOW and flight.accepted:
            # an earlier attempt may have landed where a lagging node cannot show it yet:
            # keep tracking every hash (on every endpoint) instead of abandoning the tx
            self.ledger.add_event(flight.tx_id, "nonce_used_receipt_unseen", tx_hash)
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


def private_endpoint(cfg: Any) -> Web3 | None:
    """The private send endpoint of a KeeperConfig's network, for `broadcast_w3`."""
    url = cfg.network.private_rpc_url
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10})) if url else None
