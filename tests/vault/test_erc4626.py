"""ERC-4626 properties: rounding directions, no free round trip, inflation-attack resistance."""

from __future__ import annotations

import ape
import pytest
from vaultlib import Env, deploy

pytestmark = pytest.mark.chain
USDC = 10**6


def test_decimals_offset_is_six(env: Env) -> None:
    assert env.vault.decimals() == 6 + 6


def test_preview_rounding_directions(balanced: Env) -> None:
    env, v, bob = balanced, balanced.vault, balanced.bob
    assets = 12_345_678_901  # an awkward amount, so every conversion rounds
    shares_preview = v.previewDeposit(assets)
    tx = v.deposit(assets, bob, sender=bob)
    shares = tx.decode_logs(v.Deposit)[0].shares
    assert shares_preview <= shares  # deposit: preview <= actual (rounds down, vault's favour)
    mint_shares = 7_777_777_777_777
    assets_preview = v.previewMint(mint_shares)
    spent0 = env.tokens["USDC"].balanceOf(bob)
    v.mint(mint_shares, bob, sender=bob)
    assert assets_preview >= spent0 - env.tokens["USDC"].balanceOf(bob)  # mint: preview >= actual
    wd = 3_333_333_333
    burn_preview = v.previewWithdraw(wd)
    tx = v.withdraw(wd, bob, bob, sender=bob)
    assert burn_preview >= tx.decode_logs(v.Withdraw)[0].shares  # withdraw: preview >= actual
    red = 5_555_555_555_555
    out_preview = v.previewRedeem(red)
    tx = v.redeem(red, bob, bob, sender=bob)
    assert out_preview <= tx.decode_logs(v.Withdraw)[0].assets  # redeem: preview <= actual


def test_no_free_round_trip(balanced: Env) -> None:
    env, v, bob = balanced, balanced.vault, balanced.bob
    usdc = env.tokens["USDC"]
    for amount in (1, 999, 10**6 + 1, 123_456 * USDC):
        start = usdc.balanceOf(bob)
        shares = v.deposit(amount, bob, sender=bob).decode_logs(v.Deposit)[0].shares
        v.redeem(shares, bob, bob, sender=bob)
        assert usdc.balanceOf(bob) <= start
        start = usdc.balanceOf(bob)
        v.mint(10**9 + 7, bob, sender=bob)
        v.withdraw(v.maxWithdraw(bob), bob, bob, sender=bob)
        assert usdc.balanceOf(bob) <= start


def test_max_withdraw_matches_max_redeem(balanced: Env) -> None:
    v, alice = balanced.vault, balanced.alice
    assert abs(v.maxWithdraw(alice) - v.convertToAssets(v.maxRedeem(alice))) <= 2
    # withdrawals are capped by the idle USDC (about 20% after the rebalance into targets)
    assert v.maxWithdraw(alice) < v.convertToAssets(v.balanceOf(alice))
    with ape.reverts(v.ERC4626ExceededMaxWithdraw):
        v.withdraw(v.maxWithdraw(alice) + 10 * USDC, alice, alice, sender=alice)


@pytest.mark.parametrize("donation_usdc", [1_000, 1_000_000])
def test_donating_first_depositor_cannot_steal_from_second(market, donation_usdc: int) -> None:
    env = deploy(market, seed=False)
    v, usdc = env.vault, env.tokens["USDC"]
    attacker, victim = env.attacker, env.bob
    attacker_start = usdc.balanceOf(attacker)
    v.deposit(1, attacker, sender=attacker)  # 1 raw unit (1e-6 USDC)
    usdc.transfer(v, donation_usdc * USDC, sender=attacker)  # the donation
    victim_assets = donation_usdc * USDC
    shares = v.deposit(victim_assets, victim, sender=victim).decode_logs(v.Deposit)[0].shares
    assert shares > 0
    victim_out = v.previewRedeem(shares)
    assert victim_out * 1_000_000 >= victim_assets * 999_999  # keeps >= 99.9999%
    v.redeem(v.balanceOf(attacker), attacker, attacker, sender=attacker)
    assert usdc.balanceOf(attacker) < attacker_start  # the attack loses money
    # the same attack against offset 0 (OZ formula, 1 virtual share): the victim keeps only ~2/3
    supply0, assets0 = 1, 1 + donation_usdc * USDC
    shares0 = victim_assets * (supply0 + 1) // (assets0 + 1)
    value0 = shares0 * (assets0 + victim_assets + 1) // (supply0 + shares0 + 1)
    assert value0 * 100 < victim_assets * 67


def test_deposit_cap(env: Env) -> None:
    from vaultlib import limits_tuple

    env.vault.setLimits(limits_tuple(depositCapRaw=1_100_000 * USDC), sender=env.admin)
    assert env.vault.maxDeposit(env.bob) == pytest.approx(100_000 * USDC, abs=2)
    with ape.reverts(env.vault.ERC4626ExceededMaxDeposit):
        env.vault.deposit(100_001 * USDC, env.bob, sender=env.bob)
    env.vault.deposit(99_000 * USDC, env.bob, sender=env.bob)
