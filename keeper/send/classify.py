"""Send-error taxonomy: a node's `eth_sendRawTransaction` error -> a class with one reaction.
Matching is on lower-cased message fragments used by geth, erigon, nethermind, reth, anvil and
Hardhat Network.
"""

from __future__ import annotations

from enum import StrEnum


class SendFailure(StrEnum):
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    NONCE_TOO_HIGH = "nonce_too_high"
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"
    UNDERPRICED = "underpriced"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INTRINSIC_GAS = "intrinsic_gas"
    GAS_LIMIT = "gas_limit"
    UNKNOWN = "unknown"


# What Sender does for each class.
REACTION: dict[SendFailure, str] = {
    SendFailure.ALREADY_KNOWN: "treat as broadcast; keep tracking our hashes",
    SendFailure.NONCE_TOO_LOW: "success if one of our hashes is mined; else resync, NonceError",
    SendFailure.NONCE_TOO_HIGH: "resync nonces (gap), NonceError",
    SendFailure.REPLACEMENT_UNDERPRICED: "bump again at the same nonce, up to the cap",
    SendFailure.UNDERPRICED: "re-price (bump) at the same nonce, up to the cap",
    SendFailure.INSUFFICIENT_FUNDS: "mark failed, Halt (no retry spam)",
    SendFailure.INTRINSIC_GAS: "mark failed, SendError (deterministic, no retry)",
    SendFailure.GAS_LIMIT: "mark failed, SendError (deterministic, no retry)",
    SendFailure.UNKNOWN: "mark failed if nothing was accepted, SendError",
}

# Order matters: "replacement transaction underpriced" before "underpriced".
_PATTERNS: tuple[tuple[SendFailure, tuple[str, ...]], ...] = (
    (
        SendFailure.ALREADY_KNOWN,
        (
            "already known",
            "already imported",
            "known transaction",
            "alreadyknown",
            "already in the pool",
        ),
    ),
    (SendFailure.NONCE_TOO_LOW, ("nonce too low", "nonce is too low", "oldnonce", "invalid nonce")),
    (SendFailure.NONCE_TOO_HIGH, ("nonce too high", "nonce gap", "nonce is too high")),
    (
        SendFailure.REPLACEMENT_UNDERPRICED,
        ("replacement transaction underpriced", "replacement underpriced", "replacementnotallowed"),
    ),
    (
        SendFailure.UNDERPRICED,
        (
            "underpriced",
            "less than block base fee",
            "fee cap less than",
            "max fee per gas less than",
            "feetoolow",
            "gas price too low",
            "too low for the next block",  # Hardhat: maxFeePerGas under the next base fee
        ),
    ),
    (
        SendFailure.INSUFFICIENT_FUNDS,
        ("insufficient funds", "insufficient balance", "doesn't have enough funds"),
    ),
    (SendFailure.INTRINSIC_GAS, ("intrinsic gas too low", "intrinsic gas", "requires at least")),
    (
        SendFailure.GAS_LIMIT,
        ("exceeds block gas limit", "gas limit reached", "gas_limit > env.block.gas_limit"),
    ),
)


def classify_message(message: str) -> SendFailure:
    text = message.lower()
    for kind, fragments in _PATTERNS:
        if any(f in text for f in fragments):
            return kind
    return SendFailure.UNKNOWN


def classify(err: BaseException) -> SendFailure:
    """Classify an exception raised by send_raw_transaction (Web3RPCError, ValueError)."""
    parts = [str(err), str(getattr(err, "message", "") or "")]
    response = getattr(err, "rpc_response", None)
    if isinstance(response, dict):
        parts.append(str(response.get("error", "")))
    return classify_message(" ".join(parts))
