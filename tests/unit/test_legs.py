"""Leg arithmetic: the cross impact of legs quoted one by one that run through one pool."""

from __future__ import annotations

from dataclasses import replace

from keeper.legs import leg_costs, leg_hops, shared_pool_impact
from keeper.models import Leg
from keeper.units import ONE_E18
from tests.unit.test_plan_floor import STATE, _leg

USD = ONE_E18


def _reverse(leg: Leg) -> Leg:
    """The same pool crossed the other way (USDC -> sell asset)."""
    return replace(leg, sell=leg.buy, buy=leg.sell, token_in=leg.token_out, token_out=leg.token_in)


def _path(*hops: str | int) -> bytes:
    """path("LINK", 3000, "WETH", 500, "USDC") with the STATE basket's token addresses."""
    return b"".join(h.to_bytes(3, "big") if isinstance(h, int)
                    else bytes.fromhex(STATE.asset(h).token[2:]) for h in hops)


# $100k WETH -> USDC through the 0.05% pool, quoted 40 bps under the oracle: $50 fee, $350 impact
A = _leg("WETH", 100_000, 500, 40)


def test_one_leg_has_no_cross_impact() -> None:
    fee, impact = leg_costs(STATE, [A])
    assert (fee, impact) == (50 * USD, 350 * USD)


def test_two_legs_through_one_pool_pay_the_cross_term() -> None:
    # impact quadratic in size: two $100k legs in sequence cost what one $200k leg does (4x)
    fee, impact = leg_costs(STATE, [A, A])
    assert fee == 100 * USD
    assert impact == 350 * USD + 350 * USD + 2 * 350 * USD


def test_opposite_directions_and_other_pools_add_nothing() -> None:
    other_pool = _leg("WBTC", 100_000, 3000, 80)
    assert shared_pool_impact([A, _reverse(A)], [350 * USD, 350 * USD]) == 0
    assert shared_pool_impact([A, other_pool], [350 * USD, 500 * USD]) == 0


def test_a_two_hop_leg_shares_half_its_impact_with_a_leg_on_one_of_its_hops() -> None:
    link = _leg("LINK", 100_000, 3000, 80)
    both = replace(link, path=_path("LINK", 3000, "WETH", 500, "USDC"))  # ends in A's pool
    assert [h[2] for h in leg_hops(both)] == [3000, 500]
    # `both` has 800 of impact over 2 hops: 400 on A's pool, which A (350) also crosses
    extra = shared_pool_impact([A, both], [350 * USD, 800 * USD])
    assert extra == 2 * 374_165_738_677_394_138_558  # 2 * isqrt(350e18 * 400e18)
    # through LINK/WETH only, it would share nothing with A
    only_first = replace(link, path=_path("LINK", 3000, "WETH"))
    assert shared_pool_impact([A, only_first], [350 * USD, 800 * USD]) == 0
