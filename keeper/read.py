"""Read stage: one Multicall3 eth_call per network per tick, pinned to one block.

The call carries the block getters and every vault's keeperView(), so the number of RPC round
trips per tick does not depend on the number of vaults. A vault whose view fails, or whose feeds
are stale or out of bounds, comes back with `feed_problems` set: the keeper must not act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.providers import JSONBaseProvider
from web3.types import BlockIdentifier, RPCEndpoint

from keeper.chain.contracts import address_bytes, decode_output, encode_call
from keeper.errors import ChainError, SnapshotRejected
from keeper.models import (
    AssetState,
    CollateralState,
    FeedState,
    GasHour,
    MarketSnapshot,
    VaultLimits,
    VaultState,
)
from keeper.units import E18, Bps, Raw

MAX_UINT = 2**256 - 1
BLOCK_CALLS = (
    "getBlockNumber",
    "getCurrentBlockTimestamp",
    "getBasefee",
    "getChainId",
    "getLastBlockHash",
)


@lru_cache(maxsize=4096)
def checksum(address: str) -> str:
    """EIP-55 form of an address; the same tokens and feeds recur in every vault of every
    tick, and each conversion hashes (keccak), so they are remembered."""
    return str(Web3.to_checksum_address(address))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadTarget:
    """One vault to read, with the symbols of its tokens (lower-case address -> symbol)."""

    address: str
    symbols: dict[str, str]


def build_calls(multicall: str, targets: list[ReadTarget]) -> list[tuple[str, bool, bytes]]:
    calls = [(multicall, False, encode_call("Multicall3", fn)) for fn in BLOCK_CALLS]
    calls += [(t.address, True, encode_call("RebalancingVault", "keeperView")) for t in targets]
    return calls


@dataclass(frozen=True, slots=True, kw_only=True)
class GasAsk:
    """Ask for the last hour of gas in the same round trip as the snapshot."""

    blocks: int  # blocks in an hour (eth_feeHistory's blockCount)
    tip_percentile: float


def read_snapshot(
    w3: Web3,
    multicall: str,
    targets: list[ReadTarget],
    *,
    chain_id: int,
    last_block: int | None = None,
    block: BlockIdentifier = "latest",
) -> MarketSnapshot:
    """Read every vault at one block; raise SnapshotRejected on a wrong chain or an old block."""
    return read_snapshot_with(
        w3, multicall, targets, chain_id=chain_id, last_block=last_block, block=block
    )[0]


def read_snapshot_with(
    w3: Web3,
    multicall: str,
    targets: list[ReadTarget],
    *,
    chain_id: int,
    last_block: int | None = None,
    block: BlockIdentifier = "latest",
    extra: list[tuple[str, bool, bytes]] | None = None,
    gas: GasAsk | None = None,
) -> tuple[MarketSnapshot, list[tuple[bool, bytes]], GasHour | None]:
    """read_snapshot plus `extra` Multicall3 calls (allowFailure, same block) and, with `gas`,
    the last hour of gas from eth_feeHistory, all in one round trip (a JSON-RPC batch).
    Returns the snapshot, the extra calls' (ok, return data), and the gas hour (None when not
    asked for or the node could not give it: the snapshot does not depend on it)."""
    extra = extra or []
    calls = build_calls(multicall, targets) + extra
    data = encode_call(
        "Multicall3", "aggregate3", ([(address_bytes(t), f, d) for t, f, d in calls],)
    )
    call = {"to": Web3.to_checksum_address(multicall), "data": data}
    raw, fee = _call_and_fee_history(w3, call, block, gas)
    results = _decode_results(raw, multicall)
    head = [decode(["uint256"], r[1])[0] if i < 4 else r[1] for i, r in enumerate(results[:5])]
    number, ts, base_fee, got_chain, parent = head
    if got_chain != chain_id:
        raise SnapshotRejected(f"RPC is on chain {got_chain}, config says {chain_id}")
    if last_block is not None and number < last_block:
        raise SnapshotRejected(
            f"block {number} is older than the last one seen ({last_block}): reorg or lagging node",
            block=number,
        )
    n = 5 + len(targets)
    vaults = tuple(
        _vault_state(t, ok, ret, ts) for t, (ok, ret) in zip(targets, results[5:n], strict=True)
    )
    snap = MarketSnapshot(
        chain_id=chain_id,
        block_number=number,
        block_hash="0x" + parent.hex(),
        block_ts=ts,
        base_fee_wei=base_fee,
        vaults=vaults,
    )
    hour = _gas_hour(fee, ts) if fee is not None else None
    return snap, [(bool(ok), bytes(ret)) for ok, ret in results[n:]], hour


def _decode_results(raw: bytes, multicall: str) -> Any:
    """Multicall3's (success, returnData)[]; no code at the address answers with no data."""
    if not raw:
        raise ChainError(
            f"Multicall3 at {multicall} returned no data: there is no contract at that address on "
            "this chain. Fix: check contracts.multicall3 (or the deployments file) for this network"
        )
    try:
        return decode(["(bool,bytes)[]"], raw)[0]
    except (DecodingError, ValueError, TypeError) as err:
        raise ChainError(
            f"Multicall3 at {multicall} answered {len(raw)} bytes that are not a "
            f"multicall result ({err}). Fix: check contracts.multicall3"
        ) from err


def _call_and_fee_history(
    w3: Web3, call: dict[str, Any], block: BlockIdentifier, gas: GasAsk | None
) -> tuple[bytes, Any]:
    """The multicall's return data, and eth_feeHistory's answer when asked (same batch)."""
    try:
        if gas is None:
            return bytes(w3.eth.call(call, block)), None  # type: ignore[arg-type]
        tag = block if isinstance(block, str) else hex(int(block))
        reqs = [
            (RPCEndpoint("eth_call"), [{"to": call["to"], "data": "0x" + call["data"].hex()}, tag]),
            (RPCEndpoint("eth_feeHistory"), [hex(gas.blocks), tag, [gas.tip_percentile]]),
        ]
        got = cast(JSONBaseProvider, w3.provider).make_batch_request(reqs)
    except (Web3Exception, OSError, ValueError) as err:
        raise ChainError(f"multicall read failed: {err}") from err
    if not isinstance(got, list) or len(got) != 2:
        raise ChainError(f"multicall read failed: the node answered the batch with {got!r:.200}")
    first = got[0]
    if not isinstance(first, dict) or "result" not in first:
        why = first.get("error") if isinstance(first, dict) else first
        raise ChainError(f"multicall read failed: {why!r:.200}")
    return bytes.fromhex(str(first["result"]).removeprefix("0x")), got[1]


def _vault_state(target: ReadTarget, ok: bool, ret: bytes, block_ts: int) -> VaultState:
    if not ok:
        return _unreadable(target.address, "keeperView reverted")
    if not ret:
        why = "keeperView returned no data: no vault contract at this address (check the config)"
        return _unreadable(target.address, why)
    try:
        v = decode_output("RebalancingVault", "keeperView", ret)
    except (DecodingError, ValueError, TypeError) as err:
        why = f"keeperView returned {len(ret)} bytes that are not a vault's view ({err})"
        return _unreadable(target.address, why)
    return vault_state_from_view(target, v, block_ts)


def _unreadable(address: str, why: str) -> VaultState:
    limits = VaultLimits(
        max_slippage_bps=Bps(0),
        max_trade_e18=E18(0),
        cooldown_s=0,
        loss_cap_bps=Bps(0),
        loss_period_s=0,
    )
    return VaultState(
        address=address,
        assets=(),
        nav_e18=E18(0),
        epoch=0,
        last_rebalance_ts=0,
        limits=limits,
        paused=True,
        feed_problems=(why,),
    )


def vault_state_from_view(target: ReadTarget, v: dict[str, Any], block_ts: int) -> VaultState:
    """Turn a decoded keeperView into a VaultState, checking every feed against block time."""
    assets = tuple(_asset(target, a) for a in v["assets"])
    problems = tuple(p for a in assets if (p := feed_problem(a.symbol, a.feed, block_ts)))
    limits = VaultLimits(
        max_slippage_bps=Bps(v["maxSlippageBps"]),
        max_trade_e18=E18(v["maxTradeE18"]),
        cooldown_s=v["cooldown"],
        loss_cap_bps=Bps(v["lossCapBps"]),
        loss_period_s=v["lossPeriod"],
    )
    return VaultState(
        address=checksum(target.address),
        assets=assets,
        nav_e18=E18(v["navE18"]),
        epoch=v["epoch"],
        last_rebalance_ts=v["lastRebalanceTs"],
        limits=limits,
        paused=v["paused"],
        collateral=_collateral(v),
        feed_problems=problems,
    )


def _asset(target: ReadTarget, a: dict[str, Any]) -> AssetState:
    token = checksum(a["token"])
    feed = FeedState(
        feed=checksum(a["feed"]),
        answer=a["answer"],
        decimals=a["feedDecimals"],
        updated_at_ts=a["updatedAt"],
        heartbeat_s=a["heartbeat"],
        min_answer=a["minAnswer"],
        max_answer=a["maxAnswer"],
    )
    return AssetState(
        symbol=target.symbols.get(token.lower(), token),
        token=token,
        decimals=a["decimals"],
        balance_raw=Raw(a["balance"]),
        feed=feed,
        value_e18=E18(a["valueE18"]),
        weight_bps=Bps(a["weightBps"]),
        target_bps=Bps(a["targetBps"]),
        inner_band_bps=Bps(a["innerBandBps"]),
        outer_band_bps=Bps(a["outerBandBps"]),
    )


def feed_problem(symbol: str, f: FeedState, block_ts: int) -> str | None:
    """Why a feed must not be used at `block_ts`, or None. Mirrors the vault's OracleLib."""
    if f.answer <= 0:
        return f"{symbol} feed answer {f.answer} is not positive"
    if f.updated_at_ts > block_ts:
        return f"{symbol} feed updatedAt {f.updated_at_ts} is after block time {block_ts}"
    if block_ts - f.updated_at_ts > f.heartbeat_s:
        return (
            f"{symbol} feed is stale: updated {block_ts - f.updated_at_ts} s ago, "
            f"heartbeat {f.heartbeat_s} s"
        )
    if not f.min_answer <= f.answer <= f.max_answer:
        return f"{symbol} feed answer {f.answer} outside [{f.min_answer}, {f.max_answer}]"
    return None


def _collateral(v: dict[str, Any]) -> CollateralState | None:
    if v["targetLtvBps"] == 0 and v["debtBase"] == 0 and v["collateralBase"] == 0:
        return None
    return CollateralState(
        collateral_e8=v["collateralBase"],
        debt_e8=v["debtBase"],
        health_factor_e18=v["healthFactor"],
        ltv_bps=Bps(v["ltvBps"]),
        liquidation_threshold_bps=Bps(v["liquidationThresholdBps"]),
        target_ltv_bps=Bps(v["targetLtvBps"]),
        min_ltv_bps=Bps(v["minLtvBps"]),
        max_ltv_bps=Bps(v["maxLtvBps"]),
        ripcord_ltv_bps=Bps(v["ripcordLtvBps"]),
    )


def _gas_hour(answer: Any, block_ts: int) -> GasHour | None:
    """The hour's median base fee and median tip from an eth_feeHistory answer (None if the
    node gave none: the keeper then keeps the gas outlook it had)."""
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict) or not result.get("baseFeePerGas"):
        return None
    fees = result["baseFeePerGas"]
    base = sorted(int(x, 16) for x in (fees[:-1] or fees))  # the last entry is the next block's
    tips = sorted(int(r[0], 16) for r in result.get("reward") or [] if r)
    return GasHour(hour_ts=block_ts, base_fee_wei=_median(base), tip_wei=_median(tips))


def _median(xs: list[int]) -> int:
    return xs[len(xs) // 2] if xs else 0
