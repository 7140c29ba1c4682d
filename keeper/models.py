"""The objects passed between stages: read -> forecast -> decide -> plan -> simulate -> send ->
record. Every stage imports its inputs and outputs from here, never from another stage.

No web3 types here, so the backtester builds the same objects from CSV files.
Money is integer (raw token units, E18 USD, E8 feed answers, bps); floats appear only in
`Forecast` (the maths side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from keeper.units import BPS, E18, Bps, Raw

FROZEN = {"frozen": True, "slots": True, "kw_only": True}
CASH_SYMBOLS = ("USDC", "USDT", "DAI", "USD")  # the asset that absorbs rounding and pays for trades
VolModel = Literal["garch", "ewma"]
VOL_MODELS: tuple[VolModel, ...] = ("garch", "ewma")
DEFAULT_VOL_MODEL: VolModel = "garch"  # the forecast's default, live and in the backtest


@dataclass(**FROZEN)
class FeedState:
    """One Chainlink-style feed answer as read at the snapshot block."""

    feed: str
    answer: int
    decimals: int
    updated_at_ts: int
    heartbeat_s: int
    min_answer: int
    max_answer: int


@dataclass(**FROZEN)
class AssetState:
    """One basket asset: holding, oracle price, value and weight against target and bands."""

    symbol: str
    token: str
    decimals: int
    balance_raw: Raw
    feed: FeedState
    value_e18: E18
    weight_bps: Bps
    target_bps: Bps
    inner_band_bps: Bps
    outer_band_bps: Bps

    @property
    def deviation_bps(self) -> int:
        """Signed weight minus target, in bps."""
        return int(self.weight_bps) - int(self.target_bps)

    @property
    def outside_outer(self) -> bool:
        return abs(self.deviation_bps) > self.outer_band_bps

    @property
    def outside_inner(self) -> bool:
        return abs(self.deviation_bps) > self.inner_band_bps


@dataclass(**FROZEN)
class CollateralState:
    """The vault's Aave-style lending position, in the pool's base currency (USD, 8 decimals)."""

    collateral_e8: int
    debt_e8: int
    health_factor_e18: int  # type(uint256).max when there is no debt
    ltv_bps: Bps  # current debt / collateral
    liquidation_threshold_bps: Bps
    target_ltv_bps: Bps
    min_ltv_bps: Bps  # lower edge of the band (under-levered)
    max_ltv_bps: Bps  # upper edge of the band (over-levered)
    ripcord_ltv_bps: Bps  # at or above this, the emergency deleverage path is open

    @property
    def in_danger(self) -> bool:
        return self.debt_e8 > 0 and self.ltv_bps >= self.ripcord_ltv_bps

    @property
    def outside_band(self) -> bool:
        return self.debt_e8 > 0 and not (self.min_ltv_bps <= self.ltv_bps <= self.max_ltv_bps)


@dataclass(**FROZEN)
class VaultLimits:
    """The vault's on-chain guard settings, as read."""

    max_slippage_bps: Bps
    max_trade_e18: E18
    cooldown_s: int
    loss_cap_bps: Bps
    loss_period_s: int


@dataclass(**FROZEN)
class VaultState:
    """Everything the keeper knows about one vault at one block."""

    address: str
    assets: tuple[AssetState, ...]
    nav_e18: E18
    epoch: int
    last_rebalance_ts: int
    limits: VaultLimits
    paused: bool
    collateral: CollateralState | None = None
    feed_problems: tuple[str, ...] = ()  # non-empty: the keeper must not act on this state

    def asset(self, symbol: str) -> AssetState:
        for a in self.assets:
            if a.symbol == symbol:
                return a
        raise KeyError(symbol)

    @property
    def max_abs_deviation_bps(self) -> int:
        return max((abs(a.deviation_bps) for a in self.assets), default=0)


@dataclass(**FROZEN)
class MarketSnapshot:
    """One consistent read of every vault on a network, pinned to one block."""

    chain_id: int
    block_number: int
    block_hash: str
    block_ts: int
    base_fee_wei: int
    vaults: tuple[VaultState, ...]


@dataclass(**FROZEN)
class Forecast:
    """What the forecast stage says about one vault. Floats live here and only here."""

    horizon_h: float
    vol_per_h_frac: tuple[float, ...]  # per asset, same order as VaultState.assets
    corr: tuple[tuple[float, ...], ...]
    breach_prob: float  # probability that any weight leaves its outer band within the horizon
    expected_time_to_breach_h: float  # math.inf when no breach is expected
    ltv_breach_prob: float = 0.0  # probability that the LTV crosses its max within the horizon
    notes: tuple[str, ...] = ()
    now_ts: int = 0  # the hour the forecast is for (UTC seconds): policies read the clock here
    long_run_vol_per_h_frac: tuple[float, ...] = ()  # unconditional vol, for "no vol scaling"
    ltv_vol_per_h_frac: float = 0.0  # vol of log(LTV) per hour (the collateral asset's vol)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OracleHistory:
    """One vault's hourly oracle prices, oldest first, columns in the vault's asset order
    (floats: forecasting only). Arrays: the forecast filters them every tick."""

    hours_ts: NDArray[np.int64]  # (T,)
    prices: NDArray[np.float64]  # (T, N)

    def __len__(self) -> int:
        return int(self.hours_ts.size)


@dataclass(**FROZEN)
class GasHour:
    """One hour of a chain's gas: the median base fee and median tip the keeper saw."""

    hour_ts: int
    base_fee_wei: int
    tip_wei: int

    @property
    def price_wei(self) -> int:
        return self.base_fee_wei + self.tip_wei


@dataclass(**FROZEN)
class GasOutlook:
    """What the gas history says at one hour: the typical level, and the cheapest hour ahead."""

    typical_wei: int
    min_ahead_wei: int
    hours_to_min_ahead: int


class Action(StrEnum):
    HOLD = "hold"
    REBALANCE = "rebalance"
    DELEVERAGE = "deleverage"
    RELEVERAGE = "releverage"


@dataclass(**FROZEN)
class Decision:
    """A policy's verdict for one vault. `reason` is required: every hold says why."""

    action: Action
    reason: str
    target_weights_bps: tuple[int, ...] = ()  # desired post-trade weights, same order as assets
    max_trade_e18: int = 0  # ceiling on total traded notional this step
    target_ltv_bps: int | None = None  # for collateral actions
    urgent: bool = False  # collateral in danger: cost checks may be overridden
    # What acting is worth to the policy (USD E18): the plan stage refuses a trade that costs
    # more, unless the trade is required (outer band breached, collateral in danger). See
    # docs/policies.md for how each policy sets it.
    benefit_e18: int = 0
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("Decision.reason is required")
        if self.target_weights_bps and sum(self.target_weights_bps) != BPS:
            raise ValueError(
                f"Decision.target_weights_bps must sum to {BPS}, got {sum(self.target_weights_bps)}"
            )


# ---------------------------------------------------------------- plan


@dataclass(**FROZEN)
class TradeCost:
    """What a trade costs in E18 USD (gas, pool fees and price impact); the cost model's and the
    planner's estimates share this type."""

    gas_e18: int
    fee_e18: int
    impact_e18: int

    @property
    def total_e18(self) -> int:
        return self.gas_e18 + self.fee_e18 + self.impact_e18


@dataclass(**FROZEN)
class Leg:
    """One swap of a rebalance, as planned: route, amount in and the quote it was sized on."""

    router: str
    sell: str
    buy: str
    token_in: str
    token_out: str
    fee_ppm: int  # first hop's fee (single-hop legs)
    path: bytes  # empty for exactInputSingle
    amount_in_raw: int
    notional_e18: int
    oracle_out_raw: int
    quoted_out_raw: int
    quote_gas: int

    def as_tuple(self) -> tuple[object, ...]:
        return (
            self.router,
            self.token_in,
            self.token_out,
            self.fee_ppm,
            self.amount_in_raw,
            self.path,
        )


@dataclass(**FROZEN)
class RebalancePlan:
    """The exact transaction the keeper intends to send for one vault, with its expected cost."""

    vault: str
    kind: str  # "rebalance" | "deleverage" | "releverage" | "ripcord"
    epoch: int
    deadline_ts: int
    legs: tuple[Leg, ...]
    calldata: bytes
    gas_limit: int
    cost: TradeCost
    benefit_e18: int | None  # None: required (outer band breached or collateral in danger)
    notes: tuple[str, ...] = ()


@dataclass(**FROZEN)
class NoPlan:
    """Why a decision produced no transaction: a value, not an exception."""

    reason: str
    revert: str | None = None  # the vault's revert, when measuring the transaction reverted


PlanOutcome = RebalancePlan | NoPlan


# ---------------------------------------------------------------- simulate


@dataclass(**FROZEN)
class SimulationReport:
    """The exact transaction run on a fork of the snapshot block, and the verdict on it."""

    ok: bool
    reasons: tuple[str, ...]  # empty when ok
    gas_used: int
    amounts_out_raw: tuple[int, ...]
    post_weights_bps: tuple[int, ...]
    post_distance_bps: int
    pre_distance_bps: int
    post_ltv_bps: int | None
    revert: str | None = None


# ---------------------------------------------------------------- record


@dataclass(**FROZEN)
class TickResult:
    """What one tick did for one vault: the decision, the verdict and the transaction."""

    vault: str
    name: str
    action: str
    reason: str
    verdict: str  # hold | planned | simulated | rejected | sent | failed | error | halted | skipped
    block: int | None = None
    weights_bps: tuple[int, ...] = ()
    targets_bps: tuple[int, ...] = ()
    symbols: tuple[str, ...] = ()
    tx_hash: str | None = None
    cost_usd: float | None = None
    gas_used: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(**FROZEN)
class TickRecord:
    """One tick for one vault as the ledger stores it: what was decided and why."""

    vault: str
    decision: str
    reason: str
    chain_id: int | None = None
    block_number: int | None = None
    verdict: str | None = None
    tx_id: int | None = None
    started_ts: float = 0.0
    finished_ts: float = 0.0
    details: str = "{}"  # JSON
