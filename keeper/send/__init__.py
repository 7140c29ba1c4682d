"""Transaction sending: fees (pure), nonces, keys, the Sender."""

from keeper.send.fees import Fees, bump, suggest_fees
from keeper.send.sender import ExecutionResult, Sender, SenderSettings, TxRequest

__all__ = [
    "ExecutionResult",
    "Fees",
    "Sender",
    "SenderSettings",
    "TxRequest",
    "bump",
    "suggest_fees",
]
