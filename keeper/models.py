"""The objects passed between stages: read -> forecast -> decide -> plan -> simulate -> send.

No web3 types here, so the backtester builds the same objects from CSV files.
Money is integer (raw token units, E18 USD, E8 feed answers, bps); floats appear only in
`Forecast` (the maths side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from keeper.units import BPS, E18, Bps, Raw

FROZEN = {"frozen": True, "slots": True, "kw_only": True}


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
    # Added for the policies (issue 5); defaults keep older callers valid.
    now_ts: int = 0  # the hour the forecast is for (UTC seconds): policies read the clock here
    long_run_vol_per_h_frac: tuple[float, ...] = ()  # unconditional vol, for "no vol scaling"
    ltv_vol_per_h_frac: float = 0.0  # vol of log(LTV) per hour (the collateral asset's vol)


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
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("Decision.reason is required")
        if self.target_weights_bps and sum(self.target_weights_bps) != BPS:
            raise ValueError(
                f"Decision.target_weights_bps must sum to {BPS}, got {sum(self.target_weights_bps)}"
            )
