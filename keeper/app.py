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

import numpy as np
from web3 import Web3

from keeper import batchplan, guards
from keeper.chain.rpc import failover_of
from keeper.config import KeeperConfig, VaultConfig
from keeper.costs import CostInputs, CostModel, cost_inputs, cost_model_for, eth_usd_e18_of
from keeper.errors import ChainError, Halt, KeeperError, SnapshotRejected
from keeper.forecast.gas import outlook_now
from keeper.forecast.live import Forecaster
from keeper.history import PriceHistory, hour_of
from keeper.ledger import Ledger
from keeper.metrics import Metrics
from keeper.models import (
    Action,
    Decision,
    Forecast,
    GasHour,
    GasOutlook,
    MarketSnapshot,
    NoPlan,
    PlanOutcome,
    RebalancePlan,
    SimulationReport,
    TickRecord,
    TickResult,
    VaultState,
)
from keeper.plan import PlanContext, market_from_config
from keeper.policy.base import Policy
from keeper.read import GasAsk, ReadTarget, read_snapshot_with
from keeper.send.sender import Sender, TxRequest
from keeper.simulate import SimBlock, SimJob, SimLimits, Simulator
from keeper.summaries import plan_details, report_details
from keeper.units import ONE_E18, WEI_PER_GWEI

log = logging.getLogger("keeper.app")
DEFAULT_TIP_WEI = WEI_PER_GWEI  # the tip a trade is expected to pay before any gas history
MAX_FEE_HISTORY_BLOCKS = 1024  # eth_feeHistory's usual cap


class Mode(StrEnum):
    CHECK = "check"  # read, decide, plan; send nothing
    SIMULATE = "simulate"  # + fork simulation
    SEND = "send"  # + send


@dataclass(slots=True)
class KeeperDeps:
    w3: Web3
    ledger: Ledger
    history: PriceHistory
    keeper_address: str
    policies: dict[str, Policy]  # by vault name
    forecaster: Forecaster = field(default_factory=Forecaster)
    sender: Sender | None = None
    metrics: Metrics | None = None
    fork_rpc: str | None = None  # the node simulations run on (default: the network's RPCs)
    max_pool_deviation_bps: int = guards.DEFAULT_DEVIATION_BPS  # oracle vs pool TWAP/spot
    twap_s: int = guards.DEFAULT_TWAP_S
    # blocks the hourly gas sample spans (default: an hour of blocks at the network's block time);
    # a replay, whose chain mines one block per hour carrying that hour's gas, samples that block
    gas_sample_blocks: int | None = None


class Keeper:
    """One network's keeper: all configured vaults, one snapshot per tick. Building one has no
    side effects; `recover()` resolves transactions a previous run left pending."""

    def __init__(self, cfg: KeeperConfig, deps: KeeperDeps) -> None:
        self.cfg = cfg
        self.deps = deps
        self.last_block: int | None = None
        self.market = market_from_config(cfg.contracts)
        self.refs = (
            guards.ref_pools(dict(cfg.contracts.pools), self.market.tokens)
            if "USDC" in self.market.tokens
            else []
        )
        overrides = {s: pc.as_pool_cost() for s, pc in cfg.network.pool_costs.items()}
        self.cost_models: dict[str, CostModel] = {
            v.name: cost_model_for([a.symbol for a in v.assets], overrides) for v in cfg.vaults
        }
        self.pool_prices: dict[str, guards.PoolPrice] = {}
        self.gas_outlook: GasOutlook | None = None
        self.gas_sampled_hour = -1
        self.last_ts = 0
        self.tip_wei = DEFAULT_TIP_WEI
        self._halts: list[Halt] = []
        self.simulator = Simulator(
            deps.w3,
            chain_id=cfg.network.chain_id,
            source_url=deps.fork_rpc or cfg.network.fork_source,
        )
        self._simulated: dict[str, SimulationReport | KeeperError] = {}

    def close(self) -> None:
        """Release the store's connections and the sender's claim on the account's nonces (safe
        to call twice). A one-shot command calls it before it returns; `keeper run` when it
        stops."""
        if self.deps.sender is not None:
            self.deps.sender.close()
        self.deps.ledger.close()
        self.deps.history.close()

    def recover(self) -> None:
        """Resolve the transactions a previous run left pending (never send twice)."""
        if self.deps.sender is not None:
            self.deps.sender.recover_pending()

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
        pairs = list(zip(vaults, snap.vaults, strict=True))
        steps = [self._guarded(snap, v, s, partial(self._early, snap, v, s)) for v, s in pairs]
        acting = [
            (v, s, d) for (v, s), d in zip(pairs, steps, strict=True) if isinstance(d, Decision)
        ]
        planned = self._plan_all(snap, acting)
        self._simulated = self._simulate_all(mode, snap, acting, planned)
        results = []
        for (v, s), step in zip(pairs, steps, strict=True):
            if isinstance(step, Decision):
                p = planned[v.name]
                step = self._guarded(snap, v, s, partial(self._act, mode, snap, v, s, step, p))
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
        """One round trip: every vault's view, the reference pools and, once an hour, the
        chain's gas (for the forecast's gas outlook)."""
        symbols = {t.address.lower(): s for s, t in self.cfg.contracts.tokens.items()}
        targets = [ReadTarget(address=str(v.address), symbols=symbols) for v in vaults]
        extra = guards.pool_calls(self.refs, self.deps.twap_s)
        try:
            snap, pools, gas = self._read_once(targets, extra)
        except SnapshotRejected as err:
            rpc = failover_of(self.deps.w3)
            if rpc is None or err.context.get("block") is None:
                raise
            rpc.mark_lagging(err.message)  # that node is behind: read again from another
            snap, pools, gas = self._read_once(targets, extra)
        self.pool_prices = guards.pool_prices(self.refs, pools, self.deps.twap_s)
        self.last_block = snap.block_number
        self._learn(snap, gas)
        return snap

    def _read_once(
        self, targets: list[ReadTarget], extra: list[tuple[str, bool, bytes]]
    ) -> tuple[MarketSnapshot, list[tuple[bool, bytes]], GasHour | None]:
        blocks = self.deps.gas_sample_blocks or min(
            MAX_FEE_HISTORY_BLOCKS, max(1, int(3600 / self.cfg.network.block_time_s))
        )
        ask = GasAsk(blocks=blocks, tip_percentile=self.cfg.gas.priority_fee_percentile)
        return read_snapshot_with(
            self.deps.w3,
            self.cfg.contracts.multicall3,
            targets,
            chain_id=self.cfg.network.chain_id,
            last_block=self.last_block,
            extra=extra,
            gas=ask,  # in the same batch; kept once per hour of block time (`_learn`)
        )

    def _learn(self, snap: MarketSnapshot, gas: GasHour | None) -> None:
        """Record the history the forecast learns from: every vault's prices each hour and the
        chain's gas at the first snapshot of each hour of block time (the hour is known only
        once the snapshot is read, so every read asks for the gas in its batch; a keeper that
        ticks once an hour samples every hour); then the gas outlook for the ticks of this hour."""
        history, chain = self.deps.history, snap.chain_id
        self.last_ts = snap.block_ts
        history.record_many(list(snap.vaults), snap.block_ts)
        fresh = gas is not None and hour_of(snap.block_ts) != self.gas_sampled_hour
        if not fresh and self.gas_outlook is not None:
            return
        if gas is not None and fresh:
            history.record_gas(chain, [gas])
            self.gas_sampled_hour = hour_of(snap.block_ts)
        hours = history.gas_history(chain)
        if hours:
            self.tip_wei = hours[-1].tip_wei
        self.gas_outlook = outlook_now(
            np.array([g.hour_ts for g in hours], dtype=np.int64),
            np.array([g.price_wei / WEI_PER_GWEI for g in hours], dtype=float),
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
        outcome: PlanOutcome,
    ) -> TickResult:
        if isinstance(outcome, NoPlan):
            if outcome.revert and guards.role_revoked(outcome.revert):  # a human must re-grant
                why = f"keeper role revoked on vault {state.address}: {outcome.revert}"
                raise Halt(why, vault=vcfg.name)
            return _result(vcfg, state, snap, decision.action.value, outcome.reason, "hold")
        return self._execute(mode, snap, vcfg, state, decision, outcome)

    # ------------------------------------------------------------ stages

    def decide(self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState) -> Decision:
        """The vault's policy on this snapshot: the same `decide()` the backtester calls, fed
        the same kind of forecast and cost inputs."""
        policy = self.deps.policies[vcfg.name]
        return policy.decide(state, self.forecast(snap, vcfg, state), self.cost_inputs(snap, vcfg,
                                                                                       state))

    def forecast(self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState) -> Forecast:
        horizon = float(getattr(self.deps.policies[vcfg.name], "horizon_h", 24))
        history = self.deps.history.oracle_history(state.address, len(state.assets))
        return self.deps.forecaster.forecast(state, history, horizon_h=horizon,
                                             now_ts=snap.block_ts)

    def cost_inputs(self, snap: MarketSnapshot, vcfg: VaultConfig, state: VaultState
                    ) -> CostInputs:
        return cost_inputs(self.cost_models[vcfg.name], gas_price_wei=self.gas_price_wei(snap),
                           outlook=self.gas_outlook, eth_usd_e18=eth_usd_e18_of(state))

    def gas_price_wei(self, snap: MarketSnapshot) -> int:
        """Expected effective price: base fee plus the tip of the last hour, capped by config."""
        return min(snap.base_fee_wei + self.tip_wei, int(self.cfg.gas.max_fee_wei))

    def _plan_all(
        self, snap: MarketSnapshot, items: list[tuple[VaultConfig, VaultState, Decision]]
    ) -> dict[str, PlanOutcome]:
        return batchplan.plan_all(self.deps.w3, self.market, self._plan_context(snap), items)

    def _plan_context(self, snap: MarketSnapshot) -> PlanContext:
        price = self.gas_price_wei(snap)
        eth = eth_usd_e18_of(snap.vaults[0]) if snap.vaults else 3000 * ONE_E18
        return PlanContext(
            keeper=self.deps.keeper_address,
            block=snap.block_number,
            block_ts=snap.block_ts,
            gas_price_wei=price,
            eth_usd_e18=eth,
            gas_budget=self.cfg.gas.budget_units(price),
        )

    def _execute(
        self,
        mode: Mode,
        snap: MarketSnapshot,
        vcfg: VaultConfig,
        state: VaultState,
        decision: Decision,
        plan: RebalancePlan,
    ) -> TickResult:
        details = plan_details(plan)
        base: dict[str, Any] = {"cost_usd": plan.cost.total_e18 / ONE_E18, "details": details}
        if mode == Mode.CHECK:
            return _result(
                vcfg, state, snap, decision.action.value, decision.reason, "planned", **base
            )
        report = self._simulate(snap, state, plan)
        details["simulation"] = report_details(report)
        if not report.ok:
            why = "simulation rejected: " + "; ".join(report.reasons)
            return _result(vcfg, state, snap, decision.action.value, why, "rejected", **base)
        if mode == Mode.SIMULATE:
            return _result(
                vcfg, state, snap, decision.action.value, decision.reason, "simulated", **base
            )
        return self._send(snap, vcfg, state, decision, plan, base)

    def _simulate_all(
        self,
        mode: Mode,
        snap: MarketSnapshot,
        acting: list[tuple[VaultConfig, VaultState, Decision]],
        planned: dict[str, PlanOutcome],
    ) -> dict[str, SimulationReport | KeeperError]:
        """Every plan of the tick simulated at once (one eth_simulateV1 batch, or one fork), by
        vault address; a failure to simulate is each vault's error."""
        if mode == Mode.CHECK:
            return {}
        jobs = [
            SimJob(state=s, plan=p, limits=self._sim_limits(snap, s))
            for v, s, _d in acting
            if isinstance(p := planned[v.name], RebalancePlan)
        ]
        try:
            reports = self.simulator.run(jobs, self._sim_block(snap))
        except KeeperError as err:
            return {j.plan.vault: err for j in jobs}
        return {j.plan.vault: r for j, r in zip(jobs, reports, strict=True)}

    def _simulate(
        self, snap: MarketSnapshot, state: VaultState, plan: RebalancePlan
    ) -> SimulationReport:
        got = self._simulated.pop(plan.vault, None)
        if got is None:
            job = SimJob(state=state, plan=plan, limits=self._sim_limits(snap, state))
            got = self.simulator.run([job], self._sim_block(snap))[0]
        if isinstance(got, KeeperError):
            raise got
        return got

    def _sim_limits(self, snap: MarketSnapshot, state: VaultState) -> SimLimits:
        return SimLimits(
            gas_budget=self.cfg.gas.budget_units(self.gas_price_wei(snap)),
            max_slippage_bps=int(state.limits.max_slippage_bps),
        )

    def _sim_block(self, snap: MarketSnapshot) -> SimBlock:
        """The block after the snapshot, one block time later: the earliest the transaction can
        land."""
        next_ts = snap.block_ts + max(1, math.ceil(self.cfg.network.block_time_s))
        return SimBlock(number=snap.block_number, next_ts=next_ts, keeper=self.deps.keeper_address)

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
