"""Nonce manager: one owner per (chain_id, address) in this process; nonces claimed in the store
together with their transaction row (so keepers sharing an account and a store never hand out one
nonce twice), resynced from the node's `pending` count on start and after nonce errors, with gap
detection.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from keeper.errors import NonceError
from keeper.ledger import Ledger, NewTx

# block identifier ("latest" or "pending") -> transaction count of the address at that block
NonceSource = Callable[[str], int]

_OWNERS: weakref.WeakValueDictionary[tuple[int, str], NonceManager] = weakref.WeakValueDictionary()
_OWNERS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class NonceState:
    """The result of a resync."""

    next_nonce: int
    chain_latest: int  # mined transaction count
    chain_pending: int  # mined + the node's pool
    ledger_pending: tuple[int, ...]  # our unresolved nonces >= chain_latest
    gaps: tuple[int, ...]  # nonces below next_nonce with no tx known anywhere

    @property
    def missing_from_node(self) -> tuple[int, ...]:
        """Our ledger-pending nonces the node's pending count does not cover (dropped)."""
        return tuple(n for n in self.ledger_pending if n >= self.chain_pending)


class NonceManager:
    """Hands out nonces for one (chain_id, address)."""

    def __init__(
        self,
        ledger: Ledger,
        chain_id: int,
        address: str,
        count: NonceSource,
        *,
        resync_interval_s: float = 300.0,
    ) -> None:
        self.ledger = ledger
        self.resync_interval_s = resync_interval_s  # resync every N minutes as well
        self._synced_at = 0.0
        self.chain_id = chain_id
        self.address = address
        self._count = count
        self.lock = threading.RLock()
        self.state: NonceState | None = None
        self._claim()

    def _claim(self) -> None:
        key = (self.chain_id, self.address.lower())
        with _OWNERS_LOCK:
            other = _OWNERS.get(key)
            if other is not None and other is not self:
                raise NonceError(
                    f"nonces of {self.address} on chain {self.chain_id} already have an owner "
                    "in this process: share that NonceManager (or close() it first)",
                    key="nonce",
                )
            _OWNERS[key] = self

    def close(self) -> None:
        """Give up ownership (for a clean shutdown or a test's simulated restart)."""
        key = (self.chain_id, self.address.lower())
        with _OWNERS_LOCK:
            if _OWNERS.get(key) is self:
                del _OWNERS[key]

    def sync(self) -> NonceState:
        """Resync from the node and the ledger; call on start and after any nonce error."""
        with self.lock:
            latest = self._count("latest")
            pending = self._count("pending")
            nxt, ours = self.ledger.resync_nonce(self.chain_id, self.address, latest, pending)
            gaps = tuple(n for n in range(max(latest, pending), nxt) if n not in ours)
            self.state = NonceState(
                next_nonce=nxt,
                chain_latest=latest,
                chain_pending=pending,
                ledger_pending=ours,
                gaps=gaps,
            )
            self._synced_at = time.monotonic()
            return self.state

    def _floor(self) -> int:
        if self.state is None or time.monotonic() - self._synced_at > self.resync_interval_s:
            self.sync()
        assert self.state is not None
        return self.state.chain_latest

    def reserve(self) -> int:
        """The next nonce, persisted as used. Syncs first if never synced or stale."""
        with self.lock:
            return self.ledger.claim_nonce(self.chain_id, self.address, self._floor())[0]

    def reserve_tx(self, build: Callable[[int], NewTx]) -> tuple[int, int]:
        """Claim the next nonce and write its transaction row in one store transaction:
        (nonce, tx id)."""
        with self.lock:
            nonce, tx_id = self.ledger.claim_nonce(
                self.chain_id, self.address, self._floor(), build
            )
        assert tx_id is not None
        return nonce, tx_id

    def release(self, nonce: int) -> None:
        """Hand back a reserved nonce that was never broadcast (only the newest one)."""
        with self.lock:
            self.ledger.release_nonce(self.chain_id, self.address, nonce)

    def check_unused(self, nonce: int) -> None:
        """Raise NonceError if `nonce` is already mined (reuse is caught before
        broadcast)."""
        latest = self._count("latest")
        if nonce < latest:
            self.sync()
            raise NonceError(
                f"nonce {nonce} of {self.address} is already mined (chain count {latest}): "
                "resynced, not broadcasting",
                key="nonce",
            )

    @property
    def next_nonce(self) -> int | None:
        return self.ledger.load_nonce(self.chain_id, self.address)
