"""Pure arithmetic on planned swap legs: their fees and price impact from the quotes (with the
cross impact of legs through one pool), their hops, and pool-disjoint subsets. No chain access."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keeper.units import PPM

if TYPE_CHECKING:
    from keeper.models import Leg, VaultState


def leg_costs(state: VaultState, legs: list[Leg]) -> tuple[int, int]:
    """(fees, impact) in E18 from the quotes: fees by tier, the rest of the shortfall is impact,
    plus the cross impact of legs that run in sequence through one pool (`shared_pool_impact`)."""
    fee = 0
    impacts = []
    for leg in legs:
        out_value = out_value_e18(leg, leg.quoted_out_raw)
        leg_fee = leg.notional_e18 - after_fees(leg.notional_e18, path_fees(leg))
        fee += leg_fee
        impacts.append(max(leg.notional_e18 - out_value - leg_fee, 0))
    return fee, sum(impacts) + shared_pool_impact(legs, impacts)


def out_value_e18(leg: Leg, out_raw: int) -> int:
    """The oracle value (E18 USD) of `out_raw` of the leg's output: its notional scaled by how
    much of the oracle's amount it is."""
    return out_raw * leg.notional_e18 // max(leg.oracle_out_raw, 1)


def shared_pool_impact(legs: list[Leg], impacts: list[int]) -> int:
    """Each leg was quoted alone, from the snapshot's pool state. Two legs through one pool in
    the same direction cost more in sequence: with impact quadratic in size (a pool's in-range
    price moves linearly with the amount), (a + b)^2 = a^2 + b^2 + 2ab, so the pair adds
    2 * sqrt(I_a * I_b) per shared hop, each leg's impact split evenly over its hops. Legs
    crossing a pool in opposite directions would offset; that is not credited."""
    hops = [leg_hops(leg) for leg in legs]
    per_hop = [
        (set(h), impact // max(len(h), 1)) for h, impact in zip(hops, impacts, strict=True)
    ]
    extra = 0
    for i, (hops_i, imp_i) in enumerate(per_hop):
        for hops_j, imp_j in per_hop[i + 1 :]:
            extra += len(hops_i & hops_j) * 2 * math.isqrt(imp_i * imp_j)
    return extra


def path_fees(leg: Leg) -> tuple[int, ...]:
    """Fee tiers (ppm) of every hop of a leg."""
    if not leg.path:
        return (leg.fee_ppm,)
    return tuple(
        int.from_bytes(leg.path[i + 20 : i + 23], "big") for i in range(0, len(leg.path) - 20, 23)
    )


def after_fees(value: int, fees_ppm: tuple[int, ...]) -> int:
    """`value` after every hop's fee, rounding down at each hop as the pools do."""
    for f in fees_ppm:
        value = value * (PPM - f) // PPM
    return value


def leg_hops(leg: Leg) -> list[tuple[str, str, int]]:
    """Every hop of a leg in swap order, as (token in, token out, fee), addresses lowercase."""
    if not leg.path:
        return [(leg.token_in.lower(), leg.token_out.lower(), leg.fee_ppm)]
    p = leg.path
    return [
        (
            "0x" + p[i : i + 20].hex(),
            "0x" + p[i + 23 : i + 43].hex(),
            int.from_bytes(p[i + 20 : i + 23], "big"),
        )
        for i in range(0, len(p) - 20, 23)
    ]


def leg_pools(leg: Leg) -> set[tuple[str, str, int]]:
    """The pools a leg swaps through, as (token, token, fee) with the tokens sorted."""
    return {(min(x, y), max(x, y), fee) for x, y, fee in leg_hops(leg)}


def disjoint_legs(legs: list[Leg]) -> list[Leg]:
    """The largest legs that share no pool, in their original order. Each leg was quoted alone
    against the current pool state; legs through one pool move its price for the ones after
    them, which can push a later leg under the vault's oracle floor."""
    used: set[tuple[str, str, int]] = set()
    keep: set[int] = set()
    for i in sorted(range(len(legs)), key=lambda k: -legs[k].notional_e18):
        pools = leg_pools(legs[i])
        if not pools & used:
            keep.add(i)
            used |= pools
    return [leg for i, leg in enumerate(legs) if i in keep]
