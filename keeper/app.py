"""The Keeper: sequences read -> forecast -> decide -> plan -> simulate -> send -> record.

Only this module calls the stages, in this order; no stage calls another. Dependencies are
explicit (no globals). A KeeperError in one vault is recorded for that vault and the others go on.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from web3 import Web3

from keeper import batchplan, guards
from keeper import collateral as col
from keeper.chain.rpc import failover_of
from keeper.config import KeeperConfig, VaultConfig
from keeper.costs import (
    MAINNET_POOL_COSTS,
    UNKNOWN_POOL_COST,
    CostInputs,
    CostModel,
    PoolCost,
)
from keeper.errors import ChainError, Halt, KeeperError, SnapshotRejected
from keeper.forecast import build_forecast, forecast_from_history
from keeper.history import PriceHistory
from keeper.ledger import Ledger, TickRecord
from keeper.metrics import Metrics
from keeper.models import Action, Decision, Forecast, MarketSnapshot, VaultState
from keeper.plan import Market, PlanContext, RebalancePlan
from keeper.policy.base import Policy, make_policy
from keeper.read import ReadTarget, read_snapshot_with
from keeper.send.sender import Sender, TxRequest
from keeper.simulate import SimLimits, SimulationReport, simulate
from keeper.units import ONE_E18, WEI_PER_GWEI

log = logging.getLogger("keeper.app")

# Forecast fallbacks until the price history holds MIN_HISTORY_H hours (hourly vol, fractions).
DEFAULT_VOL_PER_H = {"WETH": 0.0075, "WBTC": 0.0060, "LINK": 0.0110, "USDC": 0.0}
DEFAULT_VOL_OTHER = 0.01
MIN_HISTORY_H = 240  # the vol fit needs >= 200 hourly returns
CASH = ("USDC",)
MAX_GAS = 3_000_000  # no rebalance tx may plan more gas than this


class Mode(StrEnum):
    CHECK = "check"  # read, decide, plan; send nothing
    SIMULATE = "simulate"  # + fork simulation
    SEND = "send"  # + send


@dataclass(frozen=True, slots=True, kw_only=True)
class TickResult:
    vault: str
    name: str
    action: str
    reason: str
    verdict: str  # hold | planned | simulated | rejected | sent | failed | error
    block: int | None = None
    weights_bps: tuple[int, ...] = ()
    targets_bps: tuple[int, ...] = ()
    symbols: tuple[str, ...] = ()
    tx_hash: str | None = None
    cost_usd: float | None = None
    gas_used: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class KeeperDeps:
    w3: Web3
    ledger: Ledger
    history: PriceHistory
    keeper_address: str
    sender: Sender | None = None
    metrics: Metrics | None = None
    fork_rpc: str | None = None  # where simulations fork from (default: the network's RPC)
    max_pool_deviation_bps: int = guards.DEFAULT_DEVIATION_BPS  # oracle vs pool TWAP/spot
    twap_s: int = guards.DEFAULT_TWAP_S


class Keeper:
    """One network's keeper: all configured vaults, one snapshot per tick."""

    def __init__(self, cfg: KeeperConfig, deps: KeeperDeps) -> None:
        self.cfg = cfg
        self.deps = deps
        self.policies: dict[str, Policy] = {
            v.name: make_policy(v.policy.name, v.policy.params) for v in cfg.vaults
        }
        self.last_block: int | None = None
        self.market = _market(cfg)
        self.refs = (
            guards.ref_pools(dict(cfg.contracts.pools), self.market.tokens)
            if "USDC" in self.market.tokens
            else []
        )
        self.pool_prices: dict[str, guards.PoolPrice] = {}
        self._halts: list[Halt] = []

    # ------------------------------------------------------------ the tick

    def tick(self, mode: Mode, only: str | None = None) -> list[TickResult]:
        """One tick: a fixed number of RPC round trips however many vaults (one read, one
        batched quote multicall, one batched gas estimate), then simulate/send per acting vault."""
        started = time.time()
        vaults = [v for v in self.cfg.vaults if only in (None, v.name, v.address)]
        self._halts = []
        try:
            snap = self._read(vaults)
        except ChainError as err:  # RPC down, lagging or wrong chain: skip, record, retry later
            return self._skipped(vaults, err, started)
        self.deps.history.record_many(list(snap.vaults), snap.block_ts)
        pairs = list(zip(vaults, snap.vaults, strict=True))
        steps = [self._guarded(snap, v, s, partial(self._early, snap, v, s)) for v, s in pairs]
        acting = [
            (v, s, d) for (v, s), d in zip(pairs, steps, strict=True) if isinstance(d, Decision)
        ]
        planned = self._plan_all(snap, acting)
        results = []
        for (v, s), step in zip(pairs, steps, strict=True):
            if isinstance(step, Decision):
                p, why = planned[v.name]
                step = self._guarded(snap, v, s, partial(self._act, mode, snap, v, s, step, p, why))
            assert isinstance(step, TickResult)
            results.append(step)
        self._record(snap, results, started)
        if self.deps.metrics:
            self.deps.metrics.tick_seconds.labels(self.cfg.network.name).observe(
                time.time() - started
            )
        if self._halts:
            raise self._halts[0]
        return results

    def _skipped(
        self, vaults: list[VaultConfig], err: ChainError, started: float
    ) -> list[TickResult]:
        why = f"tick skipped: {type(err).__name__}: {err}"
        log.warning(why)
        results = [
            TickResult(
                vault=str(v.address), name=v.name, action="hold", reason=why, verdict="skipped"
            )
            for v in vaults
        ]
        self.deps.ledger.record_ticks(
            [
                TickRecord(
                    vault=r.vault,
                    decision=r.action,
                    reason=r.reason,
                    chain_id=self.cfg.network.chain_id,
                    verdict=r.verdict,
                    started_ts=started,
                    finished_ts=time.time(),
                )
                for r in results
            ]
        )
        return results

    def _read(self, vaults: list[VaultConfig]) -> MarketSnapshot:
        symbols = {t.address.lower(): s for s, t in self.cfg.contracts.tokens.items()}
        targets = [ReadTarget(address=str(v.address), symbols=symbols) for v in vaults]
        extra = guards.pool_calls(self.refs, self.deps.twap_s)
        try:
            snap, pools = self._read_once(targets, extra)
        except SnapshotRejected as err:
            rpc = failover_of(self.deps.w3)
            if rpc is None or err.context.get("block") is None:
                raise
            rpc.mark_lagging(err.message)  # K9: that node is behind; read again from another
            snap, pools = self._read_once(targets, extra)
        self.pool_prices = guards.pool_prices(self.refs, pools, self.deps.twap_s)
        self.last_block = snap.block_number
        return snap

    def _read_once(
        self, targets: list[ReadTarget], extra: list[tuple[str, bool, bytes]]
    ) -> tuple[MarketSnapshot, list[tuple[bool, bytes]]]:
        return read_snapshot_with(
            self.deps.w3,
            self.cfg.contracts.multicall3,
            targets,
            chain_id=self.cfg.network.chain_id,
            last_block=self.last_block,
            extra=extra,
        )

    def _guarded(
        self,
        snap: MarketSnapshot,
        vcfg: VaultConfig,
        state: VaultState,
        step: Callable[[], TickResult | Decision],
    ) -> TickResult | Decision:
        """Run one vault's step; a KeeperError becomes that vault's error result."""
        try:
            return step()
        except Halt as err:  # recorded with the tick, then raised to the runtime
            log.error("%s: HALT: %s", vcfg.name, err)
            self._halts.append(err)
            return _result(vcfg, state, snap, "halt", f"halted: {err}", "halted")
        except KeeperError as err:
            return _result(vcfg, state, snap, "error", f"{type(err).__name__}: {err}", "error")

    def _early(
        self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState
    ) -> TickResult | Decision:
        """The decision, or the result when the vault must not or need not act."""
        if state.feed_problems:
            why = "snapshot rejected: " + "; ".join(state.feed_problems)
            return _result(vcfg, state, snap, "hold", why, "hold")
        if state.paused:
            return _result(vcfg, state, snap, "hold", "vault is paused", "hold")
        decision = self.decide(snap, vcfg, state)
        limit = self.deps.max_pool_deviation_bps
        deviation = guards.deviation_problems(state, self.pool_prices, limit)
        if deviation:  # a repay-first ripcord does not trade on the pool price: it still goes
            why = "oracle/pool deviation alarm: " + "; ".join(deviation)
            log.warning("%s: %s", vcfg.name, why)
            if not decision.urgent:
                return _result(vcfg, state, snap, "hold", why, "hold")
        if decision.action == Action.HOLD:
            return _result(vcfg, state, snap, "hold", decision.reason, "hold")
        gas = self.cfg.gas
        wait = guards.gas_gate(
            snap,
            urgent=decision.urgent,
            max_fee_wei=int(gas.max_fee_wei),
            emergency_max_fee_wei=int(gas.emergency_max_fee_wei),
        )
        if wait:
            return _result(vcfg, state, snap, decision.action.value, wait, "hold")
        return decision

    def _act(
        self,
        mode: Mode,
        snap: MarketSnapshot,
        vcfg: VaultConfig,
        state: VaultState,
        decision: Decision,
        rplan: RebalancePlan | None,
        why: str,
    ) -> TickResult:
        if rplan is None:
            if guards.role_revoked(why):  # F38: no retry loop; the operator must re-grant
                raise Halt(f"keeper role revoked on vault {state.address}: {why}", vault=vcfg.name)
            return _result(vcfg, state, snap, decision.action.value, why, "hold")
        return self._execute(mode, snap, vcfg, state, decision, rplan)

    # ------------------------------------------------------------ stages

    def decide(self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState) -> Decision:
        urgent = col.collateral_decision(state)
        if urgent is not None:
            return urgent
        forecast = self.forecast(snap, vcfg, state)
        return self.policies[vcfg.name].decide(state, forecast, self.cost_inputs(snap, state))

    def forecast(self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState) -> Forecast:
        horizon = float(vcfg.policy.params.get("horizon_h", 24))
        series = self.deps.history.series(state.address, len(state.assets))
        if len(series) >= MIN_HISTORY_H:
            return forecast_from_history(
                state, series, horizon_h=horizon, now_ts=snap.block_ts, model="ewma"
            )
        vols = [DEFAULT_VOL_PER_H.get(a.symbol, DEFAULT_VOL_OTHER) for a in state.assets]
        n = len(vols)
        corr = [[1.0 if i == j else 0.5 for j in range(n)] for i in range(n)]
        return build_forecast(
            state, vol_per_h=vols, corr=corr, horizon_h=horizon, now_ts=snap.block_ts
        )

    def cost_inputs(self, snap: MarketSnapshot, state: VaultState) -> CostInputs:
        pools = tuple(
            None if a.symbol in CASH else pool_cost_for(self.cfg, a.symbol) for a in state.assets
        )
        gas = self.gas_price_wei(snap)
        return CostInputs(
            model=CostModel(pools=pools),
            gas_price_wei=gas,
            gas_typical_wei=gas,
            gas_min_ahead_wei=gas,
            hours_to_min_ahead=0,
            eth_usd_e18=_eth_usd_e18(state),
        )

    def gas_price_wei(self, snap: MarketSnapshot) -> int:
        """Expected effective price: base fee plus a 1 gwei tip, capped by the config."""
        return min(snap.base_fee_wei + WEI_PER_GWEI, int(self.cfg.gas.max_fee_wei))

    def _plan_all(
        self, snap: MarketSnapshot, items: list[tuple[VaultConfig, VaultState, Decision]]
    ) -> dict[str, tuple[RebalancePlan | None, str]]:
        return batchplan.plan_all(self.deps.w3, self.market, self._plan_context(snap), items)

    def _plan_context(self, snap: MarketSnapshot) -> PlanContext:
        price = self.gas_price_wei(snap)
        eth = _eth_usd_e18(snap.vaults[0]) if snap.vaults else 3000 * ONE_E18
        return PlanContext(
            keeper=self.deps.keeper_address,
            block=snap.block_number,
            block_ts=snap.block_ts,
            gas_price_wei=price,
            eth_usd_e18=eth,
            gas_budget=self._gas_budget(price),
        )

    def _gas_budget(self, gas_price_wei: int | None = None) -> int:
        """Gas units one rebalance may use: the wei budget at today's price, at most MAX_GAS."""
        budget = self.cfg.gas.budget_wei
        if not budget:
            return MAX_GAS
        price = max(gas_price_wei or int(self.cfg.gas.max_fee_wei), 1)
        return min(int(budget // price), MAX_GAS)

    def _execute(
        self,
        mode: Mode,
        snap: MarketSnapshot,
        vcfg: VaultConfig,
        state: VaultState,
        decision: Decision,
        plan: RebalancePlan,
    ) -> TickResult:
        details = _plan_details(plan)
        base: dict[str, Any] = {"cost_usd": plan.cost.total_e18 / ONE_E18, "details": details}
        if mode == Mode.CHECK:
            return _result(
                vcfg, state, snap, decision.action.value, decision.reason, "planned", **base
            )
        report = self._simulate(snap, state, plan)
        details["simulation"] = _report_details(report)
        if not report.ok:
            why = "simulation rejected: " + "; ".join(report.reasons)
            return _result(vcfg, state, snap, decision.action.value, why, "rejected", **base)
        if mode == Mode.SIMULATE:
            return _result(
                vcfg, state, snap, decision.action.value, decision.reason, "simulated", **base
            )
        return self._send(snap, vcfg, state, decision, plan, base)

    def _simulate(
        self, snap: MarketSnapshot, state: VaultState, plan: RebalancePlan
    ) -> SimulationReport:
        failover = failover_of(self.deps.w3)
        rpc = (
            self.deps.fork_rpc
            or self.cfg.network.fork_source
            or (failover.current_url() if failover else self.cfg.network.rpc_urls[0])
        )
        limits = SimLimits(
            gas_budget=self._gas_budget(self.gas_price_wei(snap)),
            max_slippage_bps=int(state.limits.max_slippage_bps),
        )
        next_ts = snap.block_ts + max(1, math.ceil(self.cfg.network.block_time_s))
        return simulate(
            rpc, state, plan, snap.block_number, self.deps.keeper_address, limits, next_ts
        )

    def _send(
        self,
        snap: MarketSnapshot,
        vcfg: VaultConfig,
        state: VaultState,
        decision: Decision,
        plan: RebalancePlan,
        base: dict[str, Any],
    ) -> TickResult:
        if self.deps.sender is None:
            raise Halt("no signing account configured: cannot send", vault=vcfg.name)
        req = TxRequest(
            to=state.address,
            data=plan.calldata,
            gas_limit=plan.gas_limit,
            purpose=plan.kind,
            vault=state.address,
            epoch_key=str(plan.epoch),
            emergency=decision.urgent,
            deadline_ts=plan.deadline_ts,
        )
        res = self.deps.sender.send(req)
        if self.deps.metrics:
            self.deps.metrics.sends.labels(vcfg.name).inc()
            self.deps.metrics.gas_spent.labels(vcfg.name).inc(res.fee_paid_wei or 0)
        verdict = "sent" if res.ok else "failed"
        reason = (
            decision.reason if res.ok else f"transaction {res.status}: {res.error or 'reverted'}"
        )
        return _result(
            vcfg,
            state,
            snap,
            decision.action.value,
            reason,
            verdict,
            tx_hash=res.tx_hash,
            gas_used=res.gas_used,
            **base,
        )

    def _record(self, snap: MarketSnapshot, results: list[TickResult], started: float) -> None:
        self.deps.ledger.record_ticks(
            [
                TickRecord(
                    vault=r.vault,
                    decision=r.action,
                    reason=r.reason,
                    chain_id=snap.chain_id,
                    block_number=snap.block_number,
                    verdict=r.verdict,
                    started_ts=started,
                    finished_ts=time.time(),
                    details=json.dumps(
                        {"tx": r.tx_hash, "cost_usd": r.cost_usd, **r.details}, default=str
                    ),
                )
                for r in results
            ]
        )
        for r in results:
            self._observe(snap, r)

    def _observe(self, snap: MarketSnapshot, r: TickResult) -> None:
        m = self.deps.metrics
        if m:
            m.decisions.labels(r.name, r.action).inc()
            if r.weights_bps:
                dev = max(abs(w - t) for w, t in zip(r.weights_bps, r.targets_bps, strict=True))
                m.deviation.labels(r.name).set(dev)
            if r.verdict in ("error", "failed", "rejected"):
                m.failures.labels(r.name, r.verdict).inc()
        log.info(
            "%s: %s (%s) %s",
            r.name,
            r.action,
            r.verdict,
            r.reason,
            extra={
                "vault": r.vault,
                "block": snap.block_number,
                "decision": r.action,
                "tx": r.tx_hash,
                "cost_usd": r.cost_usd,
            },
        )


def _result(
    vcfg: VaultConfig,
    state: VaultState,
    snap: MarketSnapshot,
    action: str,
    reason: str,
    verdict: str,
    **kw: Any,
) -> TickResult:
    return TickResult(
        vault=state.address,
        name=vcfg.name,
        action=action,
        reason=reason,
        verdict=verdict,
        block=snap.block_number,
        weights_bps=tuple(int(a.weight_bps) for a in state.assets),
        targets_bps=tuple(int(a.target_bps) for a in state.assets),
        symbols=tuple(a.symbol for a in state.assets),
        **kw,
    )


def pool_cost_for(cfg: KeeperConfig, symbol: str) -> PoolCost:
    """The cost model's pool for `symbol`: the network's pool_costs, else mainnet's."""
    got = cfg.network.pool_costs.get(symbol)
    if got is not None:
        return PoolCost(fee_ppm=got.fee_ppm, depth_e18=int(got.depth_usd) * ONE_E18)
    return MAINNET_POOL_COSTS.get(symbol, UNKNOWN_POOL_COST)


def _eth_usd_e18(state: VaultState) -> int:
    for a in state.assets:
        if a.symbol in ("WETH", "ETH") and a.feed.answer > 0:
            return int(a.feed.answer * ONE_E18 // 10**a.feed.decimals)
    return 3000 * ONE_E18  # no ETH feed in this basket: a conservative gas-cost price


def _market(cfg: KeeperConfig) -> Market:
    c = cfg.contracts
    pools = tuple((k.split("/")[0], k.split("/")[1], int(k.split("/")[2])) for k in c.pools)
    return Market(
        tokens={s: (t.address, t.decimals) for s, t in c.tokens.items()},
        pools=pools,
        router=c.routers[0],
        quoter=str(c.quoter),
        multicall=c.multicall3,
    )


def _plan_details(plan: RebalancePlan) -> dict[str, Any]:
    return {
        "kind": plan.kind,
        "epoch": plan.epoch,
        "gas_limit": plan.gas_limit,
        "legs": [
            {
                "sell": leg.sell,
                "buy": leg.buy,
                "fee_ppm": leg.fee_ppm,
                "hops": max(1, len(leg.path) // 23),
                "notional_usd": leg.notional_e18 / ONE_E18,
            }
            for leg in plan.legs
        ],
        "cost": {
            "gas_usd": plan.cost.gas_e18 / ONE_E18,
            "fee_usd": plan.cost.fee_e18 / ONE_E18,
            "impact_usd": plan.cost.impact_e18 / ONE_E18,
        },
        "notes": list(plan.notes),
    }


def _report_details(r: SimulationReport) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "reasons": list(r.reasons),
        "gas_used": r.gas_used,
        "distance_bps": [r.pre_distance_bps, r.post_distance_bps],
        "post_weights_bps": list(r.post_weights_bps),
        "revert": r.revert,
    }
