"""The keeper's exception tree. Expected outcomes (hold, reject) are values, not exceptions."""

from __future__ import annotations

from typing import Any


class KeeperError(Exception):
    """Base of every keeper error; carries optional context such as vault=, block=, key=."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        ctx = ", ".join(f"{k}={v}" for k, v in sorted(self.context.items()))
        return f"{self.message} ({ctx})"


class ConfigError(KeeperError):
    """Config is invalid: names the key path and the file."""


class ToolchainError(KeeperError):
    """A required local tool (anvil, node, compiled artifacts) is missing or unusable."""


class ChainError(KeeperError):
    """A chain interaction failed."""


class RpcUnavailable(ChainError):
    """Every configured endpoint failed."""


class SnapshotRejected(ChainError):
    """A snapshot failed validation: stale feed, out-of-bounds answer, old block."""


class ForecastError(KeeperError):
    """A forecast could not be produced: fit did not converge, bad history."""


class DataError(KeeperError):
    """Input data (price or gas files) is unusable."""


class PlanError(KeeperError):
    """No plan could be built: no route, quoter reverted."""


class SimulationError(KeeperError):
    """The fork could not start or be driven (a reject verdict is a value, not this)."""


class SendError(KeeperError):
    """A transaction could not be sent."""


class FeeCapExceeded(SendError):
    """The fee needed exceeds the configured ceiling."""


class NonceError(SendError):
    """The local nonce view disagrees with the chain in a way that needs attention."""


class TxLost(SendError):
    """A transaction vanished (dropped or reorged out) and could not be recovered."""


class LedgerError(KeeperError):
    """The ledger is unreadable, locked or corrupt. Never reset silently."""


class Halt(KeeperError):
    """Stops a vault or the scheduler: role revoked, no gas money, N failures in a row."""


class LeaseLost(SendError):
    """This keeper no longer holds the epoch lease (it expired or another keeper took it): it
    must not broadcast; the holder resumes the transaction."""


class WrongChain(ChainError):
    """Every answering RPC endpoint reports another chain id than the config's."""


class EpochTaken(SendError):
    """Another live keeper holds this vault epoch's lease, or the epoch was executed: an
    expected outcome when keepers run side by side, not a failure."""
