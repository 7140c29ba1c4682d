"""Vault test helpers on the local market (real Uniswap v3, Aave v3, feeds).

deploy() builds a fresh RebalancingVault (ape's isolation reverts it after each test), configures a
four-asset basket, whitelists the real SwapRouter and seeds 1,000,000 USDC from alice. balanced()
additionally runs one keeper rebalance into the targets and waits out the cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ape
from ape import Contract, accounts, chain, project

from keeper.localnet.artifacts import load

E18 = 10**18
E8 = 10**8
BPS = 10_000
MAX_UINT = 2**256 - 1
# the vault's ERC-7201 storage base (VaultBase._STORAGE_SLOT): slot 0 is the packed Config
CONFIG_SLOT = 0x8C931BDCD43053C9DA715CC33CB51BA79C9DF8ECF52C3ED591BE03A0BDBF2100
FLAG_DEBT = 4

# symbol -> (target bps, inner band, outer band, heartbeat s). LINK and USDC use 24 h heartbeats,
# WETH and WBTC 1 h, as their mainnet Chainlink feeds do.
BASKET = {
    "WETH": (4000, 200, 500, 3600),
    "WBTC": (3000, 200, 500, 3600),
    "LINK": (1000, 200, 500, 86400),
    "USDC": (2000, 200, 500, 86400),
}
SEED_USDC = 1_000_000
LIMITS = dict(
    maxTradeE18=2_000_000 * E18,
    ripcordMaxTradeE18=300_000 * E18,
    cooldown=3600,
    maxSlippageBps=100,
    lossCapBps=100,
    lossPeriod=86400,
    depositCapRaw=MAX_UINT,
)
COLLATERAL = dict(targetLtvBps=3000, minLtvBps=2000, maxLtvBps=5000, ripcordLtvBps=6500,
                  minHealthFactor=13 * E18 // 10)


def limits_tuple(**over: Any) -> tuple:
    lim = {**LIMITS, **over}
    return (lim["maxTradeE18"], lim["ripcordMaxTradeE18"], lim["cooldown"], lim["maxSlippageBps"],
            lim["lossCapBps"], lim["lossPeriod"], lim["depositCapRaw"])


@dataclass
class Env:
    """One configured vault plus handles on the market, with small helpers the tests share."""

    market: Any
    vault: Any
    tokens: dict[str, Any]
    feeds: dict[str, Any]
    pool: Any
    deployer: Any
    admin: Any
    keeper: Any
    guardian: Any
    alice: Any
    bob: Any
    attacker: Any
    router: str
    extra: dict[str, Any] = field(default_factory=dict)

    # ── market ──
    def price_e8(self, symbol: str) -> int:
        return int(self.feeds[symbol].latestRoundData()[1])

    def set_price(self, symbol: str, answer: int) -> None:
        fast(self.feeds[symbol].setAnswer, answer, sender=self.deployer)

    def refresh_feeds(self) -> None:
        for s in self.feeds:
            self.set_price(s, self.price_e8(s))

    def warp(self, seconds: int, refresh: bool = True) -> None:
        chain.pending_timestamp = chain.pending_timestamp + seconds
        chain.mine()
        if refresh:
            self.refresh_feeds()

    def fund(self, who: Any, symbol: str, amount_raw: int) -> None:
        fast(self.tokens[symbol].transfer, who, amount_raw, sender=self.deployer)

    # ── vault ──
    def fee(self, a: str, b: str) -> int:
        fees = [int(k.split("/")[2]) for k in self.market.pools
                if set(k.split("/")[:2]) == {a, b}]
        return min(fees)

    def leg(self, a: str, b: str, amount_raw: int, router: str | None = None,
            path: bytes = b"") -> tuple:
        return (router or self.router, self.tokens[a].address, self.tokens[b].address,
                self.fee(a, b), amount_raw, path)

    def path(self, *hops: str | int) -> bytes:
        """path("WBTC", 3000, "WETH", 500, "USDC") as Uniswap bytes."""
        out = b""
        for h in hops:
            out += (h.to_bytes(3, "big") if isinstance(h, int)
                    else bytes.fromhex(self.tokens[h].address[2:]))
        return out

    def kv(self) -> Any:
        return self.vault.keeperView()

    def epoch(self) -> int:
        return int(self.vault.epoch())

    def deadline(self, ahead: int = 600) -> int:
        return chain.pending_timestamp + ahead

    def rebalance(self, legs: list[tuple], sender: Any = None) -> Any:
        who = sender or self.keeper
        return self.vault.rebalance(legs, self.deadline(), self.epoch(), sender=who)

    def adjust(self, action: int, symbol: str, amount: int, sender: Any = None) -> Any:
        return self.vault.adjustCollateral(action, self.tokens[symbol].address, amount,
                                           self.deadline(), self.epoch(),
                                           sender=sender or self.keeper)

    def a_token(self, symbol: str) -> Any:
        return Contract(self.market.aave.a_tokens[symbol], abi=load("AToken").abi)

    def debt_token(self, symbol: str) -> Any:
        return Contract(self.market.aave.variable_debt_tokens[symbol],
                        abi=load("VariableDebtToken").abi)

    def supplied(self, symbol: str) -> int:
        """The vault's collateral in the pool: its aToken balance (raw, interest included)."""
        return int(self.a_token(symbol).balanceOf(self.vault))

    def owed(self, symbol: str) -> int:
        """The vault's debt to the pool: its variable debt token balance (raw, with interest)."""
        return int(self.debt_token(symbol).balanceOf(self.vault))

    def pool_value(self) -> tuple[int, int]:
        """(NAV E18, totalAssets raw USDC) of what the vault really has, from the tokens and the
        feeds rather than the vault: per asset wallet + aToken balance and the debt token balance,
        each valued at its feed's answer and rounded down (the vault's rounding), then the sum in
        USDC rounded down."""
        nav = 0
        for s, token in self.tokens.items():
            price_e18 = self.price_e8(s) * 10**10
            unit = 10 ** self.market.tokens[s].decimals
            held = int(token.balanceOf(self.vault))
            nav += (held + self.supplied(s)) * price_e18 // unit - self.owed(s) * price_e18 // unit
        usdc_e18 = self.price_e8("USDC") * 10**10
        return nav, max(nav, 0) * 10**6 // usdc_e18

    def lending_bits(self) -> tuple[int, int]:
        """(supplyMask, debt flag) from the vault's config slot (docs/vault.md, storage layout):
        which basket assets' aToken balances, and whether the debt token, the NAV reads."""
        word = int.from_bytes(chain.provider.web3.eth.get_storage_at(self.vault.address,
                                                                     CONFIG_SLOT), "big")
        return (word >> 160) & 0xFF, (word >> 168) & FLAG_DEBT

    def nav(self) -> int:
        return int(self.vault.navE18())

    def weights(self) -> dict[str, int]:
        return {self.symbol(a.token): int(a.weightBps) for a in self.kv().assets}

    def symbol(self, address: str) -> str:
        return next(s for s, t in self.tokens.items() if t.address.lower() == str(address).lower())

    def plan_to_target(self, frac: float = 1.0) -> list[tuple]:
        """Legs that move every non-USDC asset `frac` of the way to its target through USDC."""
        kv = self.kv()
        nav = int(kv.navE18)
        sells, buys = [], []
        for a in kv.assets:
            s = self.symbol(a.token)
            if s == "USDC":
                continue
            gap_e18 = nav * int(a.targetBps) // BPS - int(a.netValueE18)
            gap_e18 = gap_e18 * int(frac * 1000) // 1000
            if gap_e18 < 0:
                raw = (-gap_e18) * 10 ** int(a.decimals) * E8 // (int(a.answer) * E18)
                sells.append(self.leg(s, "USDC", min(raw, int(a.heldRaw))))
            elif gap_e18 > 0:
                usdc = gap_e18 * 10**6 // E18
                buys.append(self.leg("USDC", s, usdc))
        return [leg for leg in sells + buys if leg[4] > 0]


def deploy(market: Any, with_pool: bool = True, seed: bool = True) -> Env:
    acc = accounts.test_accounts
    deployer, admin, keeper, guardian, alice, bob, attacker = (acc[i] for i in range(7))
    tokens = {s: project.MockERC20.at(t.address) for s, t in market.tokens.items()}
    feeds = {s: project.MockAggregator.at(a) for s, a in market.feeds.items()}
    pool = Contract(market.lending_pool, abi=load("Pool").abi)  # Aave v3's Pool (npm artifact)
    lending = market.lending_pool if with_pool else "0x" + "00" * 20
    vault = project.RebalancingVault.deploy(admin, tokens["USDC"].address, lending,
                                            "Rebalancing Vault", "rvUSD", sender=admin)
    env = Env(market=market, vault=vault, tokens=tokens, feeds=feeds, pool=pool, deployer=deployer,
              admin=admin, keeper=keeper, guardian=guardian, alice=alice, bob=bob,
              attacker=attacker, router=market.router)
    env.refresh_feeds()
    fast(vault.setBasket, basket_configs(env), sender=admin)
    fast(vault.setRouter, market.router, True, sender=admin)
    fast(vault.setLimits, limits_tuple(), sender=admin)
    fast(vault.setCollateralParams, collateral_tuple(env), sender=admin)
    fast(vault.grantRole, vault.KEEPER_ROLE(), keeper, sender=admin)
    fast(vault.grantRole, vault.GUARDIAN_ROLE(), guardian, sender=admin)
    for who in (alice, bob, attacker):
        env.fund(who, "USDC", 10_000_000 * 10**6)
        fast(tokens["USDC"].approve, vault, MAX_UINT, sender=who)
    if seed:
        fast(vault.deposit, SEED_USDC * 10**6, alice, sender=alice)
    return env


def fast(method: Any, *args: Any, sender: Any) -> None:
    """Send a setup transaction through raw web3 (about 20x faster than ape's send path, which
    estimates, signs and logs). Only for setup steps expected to succeed; tests use ape."""
    w3 = chain.provider.web3
    data = method.encode_input(*args)
    to = method.contract.address
    tx = w3.eth.send_transaction({"from": str(sender.address), "to": to, "data": data,
                                  "gas": 8_000_000})
    rcpt = w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.002)
    if rcpt["status"] != 1:
        raise AssertionError(f"setup transaction {method} reverted")


def basket_configs(env: Env, **over: tuple) -> list[tuple]:
    out = []
    for s, (target, inner, outer, hb) in {**BASKET, **over}.items():
        price = env.price_e8(s)
        out.append((env.tokens[s].address, env.feeds[s].address, target, inner, outer, hb,
                    price // 10, price * 10))
    return out


def collateral_tuple(env: Env, **over: Any) -> tuple:
    c = {**COLLATERAL, **over}
    return (env.tokens["USDC"].address, c["targetLtvBps"], c["minLtvBps"], c["maxLtvBps"],
            c["ripcordLtvBps"], c["minHealthFactor"])



__all__ = ["BASKET", "BPS", "E8", "E18", "MAX_UINT", "Env", "ape", "basket_configs",
           "collateral_tuple", "deploy", "fast", "limits_tuple"]
