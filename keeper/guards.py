"""Keeper-side guards that stop a vault from acting: gas spikes, an oracle the pools do not
confirm, a revoked role (what each fault does is in docs/reliability.md).

- `gas_gate`: a routine action waits when the base fee is over the routine fee cap; a
  collateral-protecting (urgent) action still goes, up to the emergency cap.
- oracle vs pool: the keeper compares every feed with its reference Uniswap v3 pool (TWAP over
  `twap_s` when the pool keeps enough observations, else the spot price) and holds when they
  differ by more than the limit: a frozen feed while the market moves, or a feed the pools do
  not confirm. The vault has the same check on chain for every hop of every rebalance leg
  (`setTwapGuard`, off by default because a pool without history makes it fail closed); this
  one runs regardless, ahead of it, and also covers pools with no TWAP history.
- `role_revoked`: the vault says the keeper lacks KEEPER_ROLE: halt, do not retry.

The pool reads ride in the snapshot's Multicall3 (see read.read_snapshot_with), so they add no
round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eth_abi.abi import decode

from keeper.chain.contracts import encode_call
from keeper.models import MarketSnapshot, VaultState
from keeper.units import BPS, ONE_E8

DEFAULT_DEVIATION_BPS = 200  # oracle vs pool; majors on mainnet could use 100 (Charm: 100 ticks)
DEFAULT_TWAP_S = 1800
Q192 = 2**192


@dataclass(frozen=True, slots=True, kw_only=True)
class RefPool:
    """The pool that prices `symbol` against the quote asset (USDC)."""

    symbol: str
    pool: str
    asset_is_token0: bool
    asset_decimals: int
    quote_decimals: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolPrice:
    symbol: str
    price_e8: float
    source: str  # "twap" | "spot"


def ref_pools(
    pools: dict[str, str], tokens: dict[str, tuple[str, int]], quote: str = "USDC"
) -> list[RefPool]:
    """For every token, its lowest-fee pool against `quote` (keys like 'WETH/USDC/500')."""
    best: dict[str, tuple[int, str]] = {}
    for key, address in pools.items():
        a, b, fee = key.split("/")
        if quote not in (a, b) or a == b:
            continue
        sym = b if a == quote else a
        if sym in tokens and (sym not in best or int(fee) < best[sym][0]):
            best[sym] = (int(fee), address)
    q_addr, q_dec = tokens[quote]
    return [
        RefPool(
            symbol=s,
            pool=addr,
            asset_is_token0=int(tokens[s][0], 16) < int(q_addr, 16),
            asset_decimals=tokens[s][1],
            quote_decimals=q_dec,
        )
        for s, (_fee, addr) in sorted(best.items())
    ]


def pool_calls(refs: list[RefPool], twap_s: int = DEFAULT_TWAP_S) -> list[tuple[str, bool, bytes]]:
    """Two Multicall3 calls per pool (both may fail): observe([twap_s, 0]) and slot0()."""
    calls = []
    for r in refs:
        calls.append((r.pool, True, encode_call("UniswapV3Pool", "observe", ([twap_s, 0],))))
        calls.append((r.pool, True, encode_call("UniswapV3Pool", "slot0")))
    return calls


def pool_prices(
    refs: list[RefPool], results: list[tuple[bool, bytes]], twap_s: int = DEFAULT_TWAP_S
) -> dict[str, PoolPrice]:
    out = {}
    for i, r in enumerate(refs):
        (obs_ok, obs), (spot_ok, spot) = results[2 * i], results[2 * i + 1]
        if obs_ok and len(obs) >= 128:
            cums = decode(["int56[]", "uint160[]"], obs)[0]
            tick = (cums[1] - cums[0]) / twap_s
            out[r.symbol] = PoolPrice(
                symbol=r.symbol, price_e8=_tick_price_e8(r, tick), source="twap"
            )
        elif spot_ok and len(spot) >= 32:
            sqrt_x96 = int.from_bytes(spot[:32], "big")
            out[r.symbol] = PoolPrice(
                symbol=r.symbol, price_e8=_sqrt_price_e8(r, sqrt_x96), source="spot"
            )
    return out


def _tick_price_e8(r: RefPool, tick: float) -> float:
    ratio = math.pow(1.0001, tick)  # token1 per token0, raw units
    return _ratio_price_e8(r, ratio)


def _sqrt_price_e8(r: RefPool, sqrt_x96: int) -> float:
    return _ratio_price_e8(r, sqrt_x96 * sqrt_x96 / Q192) if sqrt_x96 else 0.0


def _ratio_price_e8(r: RefPool, ratio: float) -> float:
    # a float when the asset has fewer decimals than the quote (negative exponent)
    scale: float = 10 ** (r.asset_decimals - r.quote_decimals) * ONE_E8
    if r.asset_is_token0:  # ratio = quote raw per asset raw
        return ratio * scale
    return scale / ratio if ratio > 0 else 0.0


def deviation_problems(
    state: VaultState, prices: dict[str, PoolPrice], limit_bps: int = DEFAULT_DEVIATION_BPS
) -> list[str]:
    """Why the vault's oracle answers and the pools disagree beyond `limit_bps` (or [])."""
    problems = []
    for a in state.assets:
        pool = prices.get(a.symbol)
        if pool is None or a.feed.answer <= 0 or pool.price_e8 <= 0:
            continue
        oracle_e8 = a.feed.answer * ONE_E8 / 10**a.feed.decimals
        dev = abs(pool.price_e8 - oracle_e8) * BPS / oracle_e8
        if dev > limit_bps:
            problems.append(
                f"{a.symbol} oracle {oracle_e8 / ONE_E8:,.4f} vs pool {pool.source} "
                f"{pool.price_e8 / ONE_E8:,.4f}: {dev:,.0f} bps > {limit_bps} bps"
            )
    return problems


def gas_gate(
    snap: MarketSnapshot, *, urgent: bool, max_fee_wei: int, emergency_max_fee_wei: int
) -> str:
    """Empty when the action may be sent at this base fee, else why it waits."""
    base = snap.base_fee_wei
    if not urgent and base > max_fee_wei:
        return (
            f"gas spike: base fee {base / 1e9:,.1f} gwei over the routine cap "
            f"{max_fee_wei / 1e9:,.1f} gwei: routine action waits"
        )
    if urgent and base > emergency_max_fee_wei:
        return (
            f"gas spike: base fee {base / 1e9:,.1f} gwei over the emergency cap "
            f"{emergency_max_fee_wei / 1e9:,.1f} gwei: ripcord cannot be sent, alert"
        )
    return ""


def role_revoked(why: str) -> bool:
    """The vault's revert says the keeper is not (or no longer) authorised."""
    return "AccessControlUnauthorizedAccount" in why
