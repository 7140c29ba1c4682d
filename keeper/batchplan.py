"""The plan stage for every acting vault of a tick at once: all quotes in one Multicall3 call and
all gas in one JSON-RPC batch, so round trips do not grow with the vault count.

Two extra rounds run only when some vault needs them: legs quoted under the vault's oracle floor
are re-quoted smaller (one more quote multicall), and multi-leg rebalances whose gas measurement
reverts are measured again with pool-disjoint legs (one more gas batch). At most five round
trips per tick, whatever the number of vaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from keeper import collateral as col
from keeper import plan
from keeper.config import VaultConfig
from keeper.legs import disjoint_legs
from keeper.models import (
    Action,
    Decision,
    Leg,
    NoPlan,
    PlanOutcome,
    RebalancePlan,
    TradeCost,
    VaultState,
)
from keeper.plan import GasMeasure, Market, PlanContext, QuoteRequest
from keeper.units import ONE_E18

Item = tuple[VaultConfig, VaultState, Decision]
PlanTx = tuple[VaultConfig, VaultState, Decision, bytes]  # one vault's transaction to price
LegsAndNotes = tuple[list[Leg], tuple[str, ...]]
Quote = tuple[int, int] | None  # (amount out, gas) from QuoterV2, None when the quote failed


def plan_all(
    w3: Web3, market: Market, ctx: PlanContext, items: list[Item]
) -> dict[str, PlanOutcome]:
    """Plans for every acting vault, by vault name."""
    return _Batch(w3, market, ctx).run(items)


@dataclass(slots=True)
class _Batch:
    w3: Web3
    market: Market
    ctx: PlanContext

    def run(self, items: list[Item]) -> dict[str, PlanOutcome]:
        out: dict[str, PlanOutcome] = {}
        legs_by = self._quote_all(items, out)
        txs = self._calldata(items, legs_by)
        gases = self._estimate(txs)
        txs, gases = self._untangle(legs_by, txs, gases)
        for (v, s, d, _data), measured in zip(txs, gases, strict=True):
            out[v.name] = self._finish(s, d, legs_by.get(v.name), measured)
        return out

    # ------------------------------------------------------------------ quotes

    def _quote_all(self, items: list[Item], out: dict[str, PlanOutcome]) -> dict[str, LegsAndNotes]:
        """Every vault's quotes in one multicall; legs under the oracle floor are re-quoted at a
        smaller size in one more multicall (only when some leg needs it)."""
        swaps = [(v, s, d) for v, s, d in items if d.action == Action.REBALANCE]
        reqs = {v.name: plan.prepare_quotes(s, d, self.market) for v, s, d in swaps}
        firsts = self._quote_round({n: r for n, r in reqs.items() if isinstance(r, QuoteRequest)})
        quoted: dict[str, plan.QuotedLegs] = {}
        for v, s, _d in swaps:
            r = reqs[v.name]
            got = (
                r
                if isinstance(r, NoPlan)
                else plan.legs_from_quotes(s, self.market, r, firsts[v.name])
            )
            if isinstance(got, NoPlan):
                out[v.name] = got
            else:
                quoted[v.name] = got
        seconds = self._quote_round({n: q.retry for n, q in quoted.items() if q.retry is not None})
        legs_by: dict[str, LegsAndNotes] = {}
        for v, s, _d in swaps:
            if v.name not in quoted:
                continue
            q = quoted[v.name]
            legs = plan.merge_retry(s, self.market, q, seconds.get(v.name, []))
            if isinstance(legs, NoPlan):
                out[v.name] = legs
            else:
                legs_by[v.name] = (legs, q.notes)
        return legs_by

    def _quote_round(self, reqs: dict[str, QuoteRequest]) -> dict[str, list[Quote]]:
        """One Multicall3 eth_call for every request; results split back per vault."""
        calls = [c for r in reqs.values() for c in r.calls]
        if not calls:
            return {}
        quotes = plan.quote_all(self.w3, self.market, calls, self.ctx.block)
        out = {}
        for name, r in reqs.items():
            out[name], quotes = quotes[: len(r.calls)], quotes[len(r.calls) :]
        return out

    # ------------------------------------------------------------------ gas

    def _calldata(self, items: list[Item], legs_by: dict[str, LegsAndNotes]) -> list[PlanTx]:
        deadline = self.ctx.block_ts + self.ctx.deadline_s
        txs: list[PlanTx] = []
        for v, s, d in items:
            if d.action == Action.REBALANCE and v.name in legs_by:
                legs = legs_by[v.name][0]
                txs.append((v, s, d, plan.rebalance_calldata(legs, deadline, s.epoch)))
            elif d.action in (Action.DELEVERAGE, Action.RELEVERAGE):
                txs.append((v, s, d, col.collateral_calldata(s, d, "USDC", deadline)[0]))
        return txs

    def _estimate(self, txs: list[PlanTx]) -> list[GasMeasure]:
        sends = [(self.ctx.keeper, s.address, data) for _, s, _, data in txs]
        return plan.estimate_many(self.w3, sends, self.ctx.block)

    def _untangle(
        self, legs_by: dict[str, LegsAndNotes], txs: list[PlanTx], gases: list[GasMeasure]
    ) -> tuple[list[PlanTx], list[GasMeasure]]:
        """A multi-leg rebalance whose measurement reverts is tried once more, in the same batch
        for every such vault, with only the legs that share no pool (quotes are per leg; legs in
        one pool move its price for each other). The rest waits for the next tick. Updates
        `legs_by` for the vaults it retries."""
        redo: dict[int, list[Leg]] = {}
        for k, ((v, _s, _d, _data), measured) in enumerate(zip(txs, gases, strict=True)):
            if measured.gas_used is None and v.name in legs_by:
                fewer = disjoint_legs(legs_by[v.name][0])
                if len(fewer) < len(legs_by[v.name][0]):
                    redo[k] = fewer
        if not redo:
            return txs, gases
        deadline = self.ctx.block_ts + self.ctx.deadline_s
        txs, gases = list(txs), list(gases)
        for k, fewer in redo.items():
            v, s, d, _data = txs[k]
            dropped = len(legs_by[v.name][0]) - len(fewer)
            note = f"{dropped} leg(s) sharing a pool reverted together: sent without them"
            legs_by[v.name] = (fewer, (*legs_by[v.name][1], note))
            txs[k] = (v, s, d, plan.rebalance_calldata(fewer, deadline, s.epoch))
        again = self._estimate([txs[k] for k in redo])
        for k, got in zip(redo, again, strict=True):
            gases[k] = got
        return txs, gases

    # ------------------------------------------------------------------ plans

    def _finish(
        self,
        state: VaultState,
        decision: Decision,
        legs: LegsAndNotes | None,
        measured: GasMeasure,
    ) -> PlanOutcome:
        if legs is not None:
            return plan.finish_plan(state, decision, legs[0], measured, self.ctx, notes=legs[1])
        return self._collateral_plan(state, decision, measured)

    def _collateral_plan(
        self, state: VaultState, decision: Decision, measured: GasMeasure
    ) -> PlanOutcome:
        ctx = self.ctx
        deadline = ctx.block_ts + ctx.deadline_s
        calldata, what = col.collateral_calldata(state, decision, "USDC", deadline)
        gas = measured.gas_used
        if gas is None:
            why = f"{what}: the vault would revert: {measured.why}"
            return NoPlan(reason=why, revert=measured.why)
        cost = TradeCost(
            gas_e18=gas * ctx.gas_price_wei * ctx.eth_usd_e18 // ONE_E18, fee_e18=0, impact_e18=0
        )
        kind = "ripcord" if decision.urgent else str(decision.action.value)  # de-/releverage
        return RebalancePlan(
            vault=state.address,
            kind=kind,
            epoch=state.epoch,
            deadline_ts=deadline,
            legs=(),
            calldata=calldata,
            gas_limit=plan.gas_limit_for(gas),
            cost=cost,
            benefit_e18=None,
            notes=(what,),
        )
