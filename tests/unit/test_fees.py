"""keeper.send.fees pinned by tables of numbers: the x1.125 ladder, the base-fee formula, caps."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from keeper.errors import FeeCapExceeded
from keeper.send.fees import (
    Fees,
    bump,
    ladder,
    next_base_fee,
    replacement_fees,
    suggest_fees,
    tip_from_history,
)

GWEI = 10**9


def F(max_fee: int, tip: int) -> Fees:  # noqa: N802 - table shorthand
    return Fees(max_fee_wei=max_fee, priority_fee_wei=tip)  # type: ignore[arg-type]


# ceil(x * 1.125) at every step, for both fields.
LADDER_30_2_GWEI = [
    (30_000_000_000, 2_000_000_000),
    (33_750_000_000, 2_250_000_000),
    (37_968_750_000, 2_531_250_000),
    (42_714_843_750, 2_847_656_250),
    (48_054_199_219, 3_203_613_282),  # 48_054_199_218.75 and 3_203_613_281.25 round up
    (54_060_974_122, 3_604_064_943),
]


def test_ladder_x1125_from_30_gwei_matches_table() -> None:
    got = ladder(F(*LADDER_30_2_GWEI[0]), "12.5", cap_wei=100 * GWEI, steps=5)
    assert [(f.max_fee_wei, f.priority_fee_wei) for f in got] == LADDER_30_2_GWEI


@pytest.mark.parametrize(
    ("start", "percent", "expected"),
    [
        ((10, 1), 12.5, (12, 2)),  # 11.25 -> 12, 1.125 -> 2: ceil, never a zero bump
        ((12, 2), 12.5, (14, 3)),  # 13.5, 2.25
        ((14, 3), 12.5, (16, 4)),  # 15.75, 3.375
        ((16, 4), 12.5, (18, 5)),  # 18.0 exactly, 4.5
        ((100, 50), 20, (120, 60)),
        ((120, 60), "20", (144, 72)),
        ((100, 0), 12.5, (113, 1)),  # a zero tip rises too: 1.125 x 0 is still 0
        ((8, 8), 12.5, (9, 9)),  # tip == fee cap stays <= fee cap
    ],
)
def test_bump_raises_both_fields_by_at_least_the_percent(
    start: tuple[int, int], percent: float | str, expected: tuple[int, int]
) -> None:
    out = bump(F(*start), percent, cap_wei=None)
    assert (out.max_fee_wei, out.priority_fee_wei) == expected


def test_bump_below_12_5_percent_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bump percent \(10\) must be >= 12.5"):
        bump(F(100, 10), 10, cap_wei=None)


def test_bump_at_the_cap_raises_fee_cap_exceeded() -> None:
    assert bump(F(80, 8), 12.5, cap_wei=90).max_fee_wei == 90  # 80 x 1.125 = 90 exactly
    with pytest.raises(FeeCapExceeded, match=r"replacement needs max fee 102 wei .* cap is 100"):
        bump(F(90, 9), 12.5, cap_wei=100)  # 101.25 -> 102 > 100: no partial bump


def test_ladder_stops_before_the_cap() -> None:
    got = ladder(F(30 * GWEI, 2 * GWEI), 12.5, cap_wei=45 * GWEI, steps=10)
    assert [f.max_fee_wei for f in got] == [
        30 * GWEI,
        33_750_000_000,
        37_968_750_000,
        42_714_843_750,
    ]


HISTORY = {
    "oldestBlock": 100,
    "baseFeePerGas": [10 * GWEI, 12 * GWEI, 14 * GWEI],  # the last one is the next block's
    "gasUsedRatio": [0.9, 0.9],
    "reward": [[1 * GWEI], [3 * GWEI]],
}


@pytest.mark.parametrize(
    ("cap", "min_tip", "expected"),
    [
        (None, 0, (30 * GWEI, 2 * GWEI)),  # 2 x 14 + median(1, 3)
        (100 * GWEI, 0, (30 * GWEI, 2 * GWEI)),
        (25 * GWEI, 0, (25 * GWEI, 2 * GWEI)),  # clamped to the cap (still >= base + tip)
        (None, 5 * GWEI, (33 * GWEI, 5 * GWEI)),  # tip floor
        (16 * GWEI, 0, (16 * GWEI, 2 * GWEI)),  # exactly base + tip fits
    ],
)
def test_suggest_fees_table(cap: int | None, min_tip: int, expected: tuple[int, int]) -> None:
    f = suggest_fees(HISTORY, cap_wei=cap, min_tip_wei=min_tip)
    assert (f.max_fee_wei, f.priority_fee_wei) == expected


def test_suggest_fees_raises_when_cap_is_below_base_plus_tip() -> None:
    with pytest.raises(FeeCapExceeded, match="next base fee 14000000000 \\+ tip 2000000000 wei"):
        suggest_fees(HISTORY, cap_wei=15 * GWEI)


def test_history_fields_accept_hex_and_use_the_median_reward() -> None:
    hist = {"baseFeePerGas": ["0x3b9aca00", "0x77359400"], "reward": [["0x1"], ["0x5"], ["0x3"]]}
    assert next_base_fee(hist) == 2 * GWEI
    assert tip_from_history(hist) == 3
    assert tip_from_history({"reward": [[1], [4]]}) == 3  # even count: mean rounded up
    assert tip_from_history({"reward": []}) == 0
    with pytest.raises(ValueError, match="no baseFeePerGas"):
        next_base_fee({"baseFeePerGas": []})


def test_replacement_follows_the_market_within_the_cap() -> None:
    last = F(30 * GWEI, 2 * GWEI)
    assert replacement_fees(last, None, 12.5, 100 * GWEI) == F(33_750_000_000, 2_250_000_000)
    hot = F(80 * GWEI, 5 * GWEI)
    assert replacement_fees(last, hot, 12.5, 100 * GWEI) == F(80 * GWEI, 5 * GWEI)
    assert replacement_fees(last, hot, 12.5, 60 * GWEI) == F(60 * GWEI, 5 * GWEI)
    cold = F(10 * GWEI, 1 * GWEI)
    assert replacement_fees(last, cold, 12.5, 100 * GWEI) == F(33_750_000_000, 2_250_000_000)


def test_fees_reject_tip_above_fee_cap() -> None:
    with pytest.raises(ValueError, match=r"priority_fee_wei \(5\) must be <= max_fee_wei \(4\)"):
        F(4, 5)
    assert F(10, 1).as_tx_fields() == {"maxFeePerGas": 10, "maxPriorityFeePerGas": 1}


def test_zero_tip_on_an_idle_chain_rises_across_bumps() -> None:
    """On an idle chain the fee history's tips are 0: every replacement must still raise the
    tip (nodes require both fields to rise), from the configured floor up."""
    got = ladder(F(10 * GWEI, 0), "12.5", cap_wei=100 * GWEI, steps=3)
    tips = [f.priority_fee_wei for f in got]
    assert tips[0] == 0 and all(b > a for a, b in itertools.pairwise(tips))
    floor = bump(F(10 * GWEI, 0), "12.5", None, min_tip_wei=GWEI // 100)
    assert floor.priority_fee_wei == GWEI // 100
    nxt = replacement_fees(floor, F(1, 0), "12.5", None, min_tip_wei=GWEI // 100)
    assert nxt.priority_fee_wei == -(-(GWEI // 100) * 9 // 8)


def test_cap_errors_say_12_5_percent_and_name_the_limiting_key() -> None:
    with pytest.raises(FeeCapExceeded) as info:
        bump(F(90, 9), Fraction(25, 2), cap_wei=100, cap_key="gas.per_rebalance_budget_gwei")
    assert "(+12.5%)" in info.value.message and "25/2" not in info.value.message
    assert "set by gas.per_rebalance_budget_gwei" in info.value.message
    assert info.value.context["key"] == "gas.per_rebalance_budget_gwei"
    with pytest.raises(FeeCapExceeded) as info:
        suggest_fees(HISTORY, cap_wei=GWEI, cap_key="gas.per_rebalance_budget_gwei")
    assert "raise gas.per_rebalance_budget_gwei" in info.value.message
    assert "max_fee_gwei" not in info.value.message
