"""The epoch lease a Sender holds while it drives one transaction (see keeper/store/leases.py).

Taken before anything is signed, renewed by a heartbeat thread every third of its length, and
checked in the store right before every broadcast (the fence): a keeper whose lease expired or
was taken over raises LeaseLost instead of broadcasting. A transaction without a vault epoch
(a gap-filling or cancelling no-op) is leased per account and nonce, so two keepers sharing an
account never drive one nonce at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from keeper.errors import EpochTaken, LeaseLost, LedgerError
from keeper.ledger import Ledger, TxRow

log = logging.getLogger("keeper.send")


def lease_key(
    vault: str | None, epoch_key: str | None, sender: str, nonce: int | None
) -> tuple[str, str]:
    if vault and epoch_key:
        return vault, epoch_key
    return f"account:{sender.lower()}", f"nonce:{nonce}"


def row_key(row: TxRow) -> tuple[str, str]:
    return lease_key(row.vault, row.epoch_key, row.sender, row.nonce)


@dataclass(eq=False)
class Lease:
    ledger: Ledger
    vault: str
    epoch: str
    owner: str
    token: int
    ttl_s: float
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Lease:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.ledger.renew_lease(
                    self.vault, self.epoch, self.owner, self.token, self.ttl_s
                ):
                    self.lost = True
                    return
            except LedgerError as err:  # store unreachable: the fence refuses until it heals
                log.warning("lease %s/%s not renewed: %s", self.vault, self.epoch, err)

    def check(self) -> None:
        """The fence: raise LeaseLost unless the store still shows this lease with our token
        (and extend it)."""
        if not self.lost and self.ledger.renew_lease(
            self.vault, self.epoch, self.owner, self.token, self.ttl_s
        ):
            return
        self.lost = True
        raise LeaseLost(
            f"lease on epoch {self.epoch} of {self.vault} lost (token {self.token}): another "
            "keeper holds it now; not broadcasting",
            vault=self.vault,
            key="lease",
        )

    def stop(self) -> None:
        self._stop.set()

    def release(self, *, done: bool) -> None:
        self.stop()
        if not self.lost:
            self.ledger.finish_epoch(self.vault, self.epoch, self.owner, done=done)


def take(ledger: Ledger, key: tuple[str, str], owner: str, ttl_s: float) -> Lease | None:
    token = ledger.take_lease(key[0], key[1], owner, ttl_s)
    if not token:
        return None
    return Lease(ledger, key[0], key[1], owner, token, ttl_s).start()


def refused(ledger: Ledger, key: tuple[str, str]) -> EpochTaken:
    held = ledger.lease(*key)
    if held is not None and held.done:
        what = "was already executed"
    else:
        what = f"is being executed by another keeper instance ({held.owner if held else '?'})"
    return EpochTaken(
        f"epoch {key[1]} of vault {key[0]} {what}: not sending", vault=key[0], key="epoch"
    )
