"""Plan stage: a Decision becomes concrete swap legs, priced with QuoterV2, with an expected cost.

Pure parts (trade sizing, routing, path encoding, cost arithmetic) are separate from the two
chain reads (one batched QuoterV2 multicall, one gas estimate), so they are unit-testable.
Integer money only: E18 USD, raw token units, ppm fee tiers.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode
from web3 import Web3
from web3.exceptions import Web3Exception
from web3.providers import JSONBaseProvider
from web3.types import BlockIdentifier, RPCEndpoint

from keeper.chain.contracts import address_bytes, encode_call
from keeper.chain.errors import method_missing, name_revert, revert_data
from keeper.config import Contracts
from keeper.costs import MAX_REQUIRED_COST_BPS, cost_gate, required_or_benefit_e18
from keeper.errors import PlanError
from keeper.legs import after_fees, leg_costs, path_fees
from keeper.models import (
    AssetState,
    Decision,
    Leg,
    NoPlan,
    PlanOutcome,
    RebalancePlan,
    TradeCost,
    VaultState,
)
from keeper.units import BPS, ONE_E18

log = logging.getLogger("keeper.plan")
FROZEN = {"frozen": True, "slots": True, "kw_only": True}
MIN_LEG_E18 = 10 * ONE_E18  # legs under $10 are dust: not worth a swap
GAS_LIMIT_PCT = 135  # gas limit = 1.35 x measured use (refunds of up to 25% + 63/64 margin)
SHRINK_AIM_BPS = 5_000  # a leg re-sized for the oracle floor aims at half the impact room


@dataclass(**FROZEN)
class Trade:
    """Sell `notional_e18` of `sell` to buy `buy` (oracle value)."""

    sell: str
    buy: str
    notional_e18: int


@dataclass(**FROZEN)
class Route:
    fees_ppm: tuple[int, ...]  # one fee per hop
    tokens: tuple[str, ...]  # symbols, first = sell, last = buy


@dataclass(**FROZEN)
class Market:
    """What the planner needs from config: tokens, pools, router, quoter, multicall."""

    tokens: dict[str, tuple[str, int]]  # symbol -> (address, decimals)
    pools: tuple[tuple[str, str, int], ...]  # (symbolA, symbolB, fee_ppm)
    router: str
    quoter: str
    multicall: str
    hubs: tuple[str, ...] = ("USDC", "WETH")


def market_from_config(c: Contracts) -> Market:
    """The planner's view of a network's contracts: tokens, pools ("A/B/fee" keys), router."""
    pools = tuple((k.split("/")[0], k.split("/")[1], int(k.split("/")[2])) for k in c.pools)
    return Market(
        tokens={s: (t.address, t.decimals) for s, t in c.tokens.items()},
        pools=pools,
        router=c.routers[0],
        quoter=str(c.quoter),
        multicall=c.multicall3,
    )


# ------------------------------------------------------------------ pure: sizing


def trades_for(state: VaultState, decision: Decision) -> list[Trade]:
    """Greedy pairing of over- and under-weight assets, capped at the decision's and vault's max."""
    nav = state.nav_e18
    # an asset the policy leaves where it is (target == its weight in bps) does not trade: its
    # exact value differs from the rounded bps by up to half a bp of NAV, which is no trade
    deltas = {
        a.symbol: 0 if t == a.weight_bps else nav * t // BPS - a.value_e18
        for a, t in zip(state.assets, decision.target_weights_bps, strict=True)
    }
    sells = sorted(((-d, s) for s, d in deltas.items() if d < 0), reverse=True)
    buys = sorted(((d, s) for s, d in deltas.items() if d > 0), reverse=True)
    total = sum(v for v, _ in sells)
    cap = (
        min(x for x in (decision.max_trade_e18, state.limits.max_trade_e18, total) if x > 0)
        if total
        else 0
    )
    return _pair(_scaled(sells, cap, total), _scaled(buys, cap, sum(v for v, _ in buys)))


def _scaled(side: list[tuple[int, str]], cap: int, total: int) -> list[tuple[int, str]]:
    return [(v * cap // total, s) for v, s in side] if total else []


def _pair(sells: list[tuple[int, str]], buys: list[tuple[int, str]]) -> list[Trade]:
    """Match sells to buys greedily in order; a remainder under MIN_LEG_E18 is dropped."""
    left_s, left_b = [v for v, _ in sells], [v for v, _ in buys]
    out: list[Trade] = []
    i = j = 0
    while i < len(sells) and j < len(buys):
        amount = min(left_s[i], left_b[j])
        if amount >= MIN_LEG_E18:
            out.append(Trade(sell=sells[i][1], buy=buys[j][1], notional_e18=amount))
        left_s[i] -= amount
        left_b[j] -= amount
        i += left_s[i] < MIN_LEG_E18
        j += left_b[j] < MIN_LEG_E18
    return out


def raw_for_value(value_e18: int, a: AssetState) -> int:
    """Raw token units worth `value_e18` at the oracle price (rounding down)."""
    return int(value_e18 * 10**a.decimals * 10**a.feed.decimals // (a.feed.answer * ONE_E18))


# ------------------------------------------------------------------ pure: routing


def routes(market: Market, sell: str, buy: str) -> list[Route]:
    """Direct pools first, then two-hop routes through each hub."""
    direct = [Route(fees_ppm=(f,), tokens=(sell, buy)) for f in _fees(market, sell, buy)]
    hops = [
        Route(fees_ppm=(f1, f2), tokens=(sell, h, buy))
        for h in market.hubs
        if h not in (sell, buy)
        for f1 in _fees(market, sell, h)
        for f2 in _fees(market, h, buy)
    ]
    return direct + hops


def _fees(market: Market, a: str, b: str) -> list[int]:
    return sorted(f for x, y, f in market.pools if {x, y} == {a, b})


def encode_path(market: Market, route: Route) -> bytes:
    """Uniswap v3 path: token (20) | fee (3) | token (20) ..."""
    out = address_bytes(market.tokens[route.tokens[0]][0])
    for fee, sym in zip(route.fees_ppm, route.tokens[1:], strict=True):
        out += fee.to_bytes(3, "big") + address_bytes(market.tokens[sym][0])
    return out


def quote_call(market: Market, route: Route, amount_in: int) -> tuple[str, bool, bytes]:
    if len(route.fees_ppm) == 1:
        args = (
            (
                market.tokens[route.tokens[0]][0],
                market.tokens[route.tokens[1]][0],
                amount_in,
                route.fees_ppm[0],
                0,
            ),
        )
        return (market.quoter, True, encode_call("QuoterV2", "quoteExactInputSingle", args))
    args2 = (encode_path(market, route), amount_in)
    return (market.quoter, True, encode_call("QuoterV2", "quoteExactInput", args2))


# ------------------------------------------------------------------ chain: quotes and gas


def quote_all(
    w3: Web3, market: Market, calls: list[tuple[str, bool, bytes]], block: BlockIdentifier
) -> list[tuple[int, int] | None]:
    """All quotes in one Multicall3 eth_call: (amountOut, gasEstimate) or None if it failed."""
    data = encode_call(
        "Multicall3", "aggregate3", ([(address_bytes(t), f, d) for t, f, d in calls],)
    )
    try:
        raw = w3.eth.call({"to": Web3.to_checksum_address(market.multicall), "data": data}, block)
    except (Web3Exception, ValueError) as err:
        raise PlanError(f"quoter multicall failed: {err}") from err
    out: list[tuple[int, int] | None] = []
    for ok, ret in decode(["(bool,bytes)[]"], raw)[0]:
        out.append(_quote_result(ok, ret))
    return out


def _quote_result(ok: bool, ret: bytes) -> tuple[int, int] | None:
    if not ok or len(ret) < 128:
        return None
    amount_out = int.from_bytes(ret[:32], "big")
    gas = int.from_bytes(ret[-32:], "big")
    return amount_out, gas


# ------------------------------------------------------------------ assembling


def build_legs(
    state: VaultState,
    market: Market,
    trades: list[Trade],
    quotes: dict[tuple[int, int], tuple[int, int] | None],
    candidates: list[list[Route]],
) -> list[Leg]:
    """Pick, per trade, the route with the best quote; drop trades with no quote."""
    legs = []
    for t_i, (trade, rts) in enumerate(zip(trades, candidates, strict=True)):
        best = max(
            ((quotes.get((t_i, r_i)), r) for r_i, r in enumerate(rts)),
            key=lambda qr: qr[0][0] if qr[0] else -1,
            default=(None, None),
        )
        q, route = best
        if q is None or route is None:
            continue
        legs.append(_leg(state, market, trade, route, q))
    return legs


def _leg(state: VaultState, market: Market, trade: Trade, route: Route, q: tuple[int, int]) -> Leg:
    a_in, a_out = state.asset(trade.sell), state.asset(trade.buy)
    single = len(route.fees_ppm) == 1
    return Leg(
        router=market.router,
        sell=trade.sell,
        buy=trade.buy,
        token_in=a_in.token,
        token_out=a_out.token,
        fee_ppm=route.fees_ppm[0],
        path=b"" if single else encode_path(market, route),
        amount_in_raw=raw_for_value(trade.notional_e18, a_in),
        notional_e18=trade.notional_e18,
        oracle_out_raw=raw_for_value(trade.notional_e18, a_out),
        quoted_out_raw=q[0],
        quote_gas=q[1],
    )


def floor_breaches(state: VaultState, legs: list[Leg]) -> list[str]:
    """Legs whose quote is under the vault's oracle floor: they would revert on chain."""
    keep = BPS - state.limits.max_slippage_bps
    return [
        f"{leg.sell}->{leg.buy}: quote {leg.quoted_out_raw} < floor "
        f"{leg.oracle_out_raw * keep // BPS}"
        for leg in legs
        if leg.quoted_out_raw * BPS < leg.oracle_out_raw * keep
    ]


def rebalance_calldata(legs: list[Leg], deadline_ts: int, epoch: int) -> bytes:
    return encode_call(
        "RebalancingVault", "rebalance", ([leg.as_tuple() for leg in legs], deadline_ts, epoch)
    )


# ------------------------------------------------------------------ the stage


@dataclass(**FROZEN)
class PlanContext:
    """Chain-side inputs of one plan: who sends, at which block, at what gas price."""

    keeper: str
    block: int
    block_ts: int
    gas_price_wei: int  # expected effective price (base fee forecast + tip)
    eth_usd_e18: int
    deadline_s: int = 300
    gas_budget: int = 2_000_000  # per rebalance tx, from config
    max_required_cost_bps: int = MAX_REQUIRED_COST_BPS


@dataclass(**FROZEN)
class QuoteRequest:
    """The quotes one vault's plan needs: candidate routes per trade, as multicall entries."""

    trades: tuple[Trade, ...]
    candidates: tuple[tuple[Route, ...], ...]
    calls: tuple[tuple[str, bool, bytes], ...]
    index: tuple[tuple[int, int], ...]


def prepare_quotes(state: VaultState, decision: Decision, market: Market) -> QuoteRequest | NoPlan:
    """Trades and their candidate quote calls, or why there is nothing to quote."""
    trades = trades_for(state, decision)
    if not trades:
        return NoPlan(reason="no trade above the dust size")
    return request_for(state, market, trades)


def request_for(state: VaultState, market: Market, trades: list[Trade]) -> QuoteRequest:
    """Every candidate route of every trade, as quote calls."""
    candidates = [routes(market, t.sell, t.buy) for t in trades]
    calls, index = _quote_calls(state, market, trades, candidates)
    return QuoteRequest(
        trades=tuple(trades),
        candidates=tuple(tuple(c) for c in candidates),
        calls=tuple(calls),
        index=tuple(index),
    )


@dataclass(**FROZEN)
class QuotedLegs:
    """Legs whose quotes clear the vault's oracle floor, plus smaller trades to quote again for
    the legs that did not (a thin pool: the same trade at a smaller size clears the floor)."""

    ok: tuple[Leg, ...]
    retry: QuoteRequest | None
    notes: tuple[str, ...]


def legs_from_quotes(
    state: VaultState, market: Market, req: QuoteRequest, results: list[tuple[int, int] | None]
) -> QuotedLegs | NoPlan:
    """The best-quoted route per trade, split on the oracle floor; or why there is no plan."""
    quotes = dict(zip(req.index, results, strict=True))
    legs = build_legs(state, market, list(req.trades), quotes, [list(c) for c in req.candidates])
    if not legs:
        return NoPlan(reason="no route with a quote for any trade")
    ok, bad = split_on_floor(state, legs)
    smaller = [shrunk_trade(state, leg) for leg in bad]
    notes = tuple(_shrink_note(leg, t) for leg, t in zip(bad, smaller, strict=True))
    retry_trades = [t for t in smaller if t is not None]
    retry = request_for(state, market, retry_trades) if retry_trades else None
    if not ok and retry is None:
        why = "quote under the vault's oracle floor: " + "; ".join(floor_breaches(state, bad))
        return NoPlan(reason=why)
    return QuotedLegs(ok=tuple(ok), retry=retry, notes=notes)


def _shrink_note(leg: Leg, smaller: Trade | None) -> str:
    head = f"{leg.sell}->{leg.buy} ${leg.notional_e18 // ONE_E18:,} quoted under the oracle floor"
    if smaller is None:
        return head + ", dropped"
    return head + f", re-quoted at ${smaller.notional_e18 // ONE_E18:,}"


def merge_retry(
    state: VaultState, market: Market, quoted: QuotedLegs, results: list[tuple[int, int] | None]
) -> list[Leg] | NoPlan:
    """Add the re-quoted smaller legs that now clear the floor (no second shrink)."""
    legs = list(quoted.ok)
    if quoted.retry is not None:
        quotes = dict(zip(quoted.retry.index, results, strict=True))
        retry = quoted.retry
        again = build_legs(
            state, market, list(retry.trades), quotes, [list(c) for c in retry.candidates]
        )
        legs += split_on_floor(state, again)[0]
    if not legs:
        why = "quote under the vault's oracle floor even at a smaller size: "
        return NoPlan(reason=why + "; ".join(quoted.notes))
    return legs


def split_on_floor(state: VaultState, legs: list[Leg]) -> tuple[list[Leg], list[Leg]]:
    """(legs that clear the vault's oracle floor, legs that would revert on chain)."""
    keep = BPS - state.limits.max_slippage_bps
    ok = [leg for leg in legs if leg.quoted_out_raw * BPS >= leg.oracle_out_raw * keep]
    return ok, [leg for leg in legs if leg not in ok]


def shrunk_trade(state: VaultState, leg: Leg) -> Trade | None:
    """The same trade at the size whose price impact should clear the floor, or None when fees
    alone eat the slippage allowance or the smaller leg would be dust.

    Impact grows at least linearly with size in a v3 pool (more ticks crossed), so scaling the
    notional by (room / impact) aims at or under the room; SHRINK_AIM_BPS leaves headroom."""
    n = leg.notional_e18
    fee_bps = (n - after_fees(n, path_fees(leg))) * BPS // n
    shortfall_bps = (leg.oracle_out_raw - leg.quoted_out_raw) * BPS // max(leg.oracle_out_raw, 1)
    impact_bps = shortfall_bps - fee_bps
    room_bps = state.limits.max_slippage_bps - fee_bps
    if room_bps <= 0 or impact_bps <= 0:
        return None
    smaller = n * room_bps * SHRINK_AIM_BPS // (impact_bps * BPS)
    if smaller < MIN_LEG_E18 or smaller >= n:
        return None
    return Trade(sell=leg.sell, buy=leg.buy, notional_e18=smaller)


@dataclass(**FROZEN)
class GasMeasure:
    """The gas one transaction used at the snapshot block, or why it has no figure."""

    gas_used: int | None  # None: it reverts, or the node gave no figure
    why: str = ""  # the vault's revert, named when the node returned its data


def estimate_many(w3: Web3, txs: list[tuple[str, str, bytes]], block: int) -> list[GasMeasure]:
    """Gas used by every (from, to, data), in one JSON-RPC batch.

    It asks eth_createAccessList, which executes each transaction once and reports the gas it
    used, instead of eth_estimateGas, whose binary search executes it a dozen times (6x slower
    for 100 rebalances on anvil). The used gas is after refunds, so the gas limit adds a margin
    (gas_limit_for), and the fork simulation runs the exact transaction at that limit. A node
    without eth_createAccessList (Hardhat, some public RPC providers) is asked eth_estimateGas
    instead, from then on, and the log says so once."""
    if not txs:
        return []
    if w3.provider not in _NO_ACCESS_LIST:
        responses = _gas_batch(w3, "eth_createAccessList", txs, block)
        if not all(method_missing(r.get("error")) for r in responses):
            return [_estimate_result(r) for r in responses]
        _NO_ACCESS_LIST.add(w3.provider)
        log.warning(
            "the node has no eth_createAccessList: gas is measured with eth_estimateGas, "
            "which runs each transaction about a dozen times"
        )
    return [_estimate_result(r) for r in _gas_batch(w3, "eth_estimateGas", txs, block)]


# providers whose node answered that it has no eth_createAccessList
_NO_ACCESS_LIST: weakref.WeakSet[Any] = weakref.WeakSet()


def _gas_batch(
    w3: Web3, method: str, txs: list[tuple[str, str, bytes]], block: int
) -> list[dict[str, Any]]:
    reqs = [
        (RPCEndpoint(method), [{"from": f, "to": t, "data": "0x" + d.hex()}, hex(block)])
        for f, t, d in txs
    ]
    try:
        responses = cast(JSONBaseProvider, w3.provider).make_batch_request(reqs)
    except (Web3Exception, OSError, ValueError) as err:
        raise PlanError(f"batched gas measurement failed: {err}") from err
    if not isinstance(responses, list):
        raise PlanError(f"batched gas measurement failed: {responses.get('error')}")
    return [dict(r) for r in responses]


def _estimate_result(r: dict[str, Any]) -> GasMeasure:
    result = r.get("result")
    if isinstance(result, str):  # eth_estimateGas: the gas limit that suffices
        return GasMeasure(gas_used=int(result, 16))
    if isinstance(result, dict) and "gasUsed" in result and not result.get("error"):
        return GasMeasure(gas_used=int(result["gasUsed"], 16))
    err = r.get("error") or {"message": (result or {}).get("error", "no gas figure")}
    named = name_revert(revert_data(err))
    return GasMeasure(gas_used=None, why=named or str(err.get("message")))


def gas_limit_for(gas_used: int) -> int:
    """The transaction's gas limit from its measured use: refunds (up to a fifth of the gas
    used, EIP-3529) are paid back only at the end, and calls forward 63/64 of what is left."""
    return gas_used * GAS_LIMIT_PCT // 100


def _quote_calls(
    state: VaultState, market: Market, trades: list[Trade], candidates: list[list[Route]]
) -> tuple[list[tuple[str, bool, bytes]], list[tuple[int, int]]]:
    calls, index = [], []
    for t_i, (trade, rts) in enumerate(zip(trades, candidates, strict=True)):
        amount_in = raw_for_value(trade.notional_e18, state.asset(trade.sell))
        for r_i, route in enumerate(rts):
            calls.append(quote_call(market, route, amount_in))
            index.append((t_i, r_i))
    return calls, index


def finish_plan(
    state: VaultState,
    decision: Decision,
    legs: list[Leg],
    measured: GasMeasure,
    ctx: PlanContext,
    notes: tuple[str, ...] = (),
) -> PlanOutcome:
    """Price a quoted plan with its gas estimate and apply the cost-benefit check."""
    gas = measured.gas_used
    if gas is None:
        return NoPlan(reason=f"the vault would revert: {measured.why}", revert=measured.why)
    if gas > ctx.gas_budget:
        return NoPlan(reason=f"gas {gas} over the budget {ctx.gas_budget}")
    deadline = ctx.block_ts + ctx.deadline_s
    fee, impact = leg_costs(state, legs)
    cost = TradeCost(
        gas_e18=gas * ctx.gas_price_wei * ctx.eth_usd_e18 // ONE_E18, fee_e18=fee, impact_e18=impact
    )
    benefit = required_or_benefit_e18(state, decision)
    refused = cost_check(state, cost, benefit, ctx.max_required_cost_bps)
    if refused is not None:
        return refused
    return RebalancePlan(
        vault=state.address,
        kind="rebalance",
        epoch=state.epoch,
        deadline_ts=deadline,
        legs=tuple(legs),
        calldata=rebalance_calldata(legs, deadline, state.epoch),
        gas_limit=gas_limit_for(gas),
        cost=cost,
        benefit_e18=benefit,
        notes=notes,
    )


def cost_check(
    state: VaultState, cost: TradeCost, benefit_e18: int | None, max_bps: int
) -> NoPlan | None:
    """None when the plan may go ahead, else why not (the rule lives in keeper.costs)."""
    why = cost_gate(cost, benefit_e18, state.nav_e18, max_bps)
    return NoPlan(reason=why) if why else None
