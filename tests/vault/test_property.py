"""Stateful property test: hypothesis drives deposits, withdrawals, oracle and pool moves, time
travel, donations, pause, a keeper that may be wrong (rebalances toward and away from target,
random legs), collateral adjustments and the ripcord, on the real Uniswap v3 pools.

Invariants after every step: totalSupply equals the sum of holders' balances; a successful keeper
action never lowers NAV by more than the loss cap; after any keeper action the health factor is at
or above its minimum (ripcord: the LTV fell); while paused nothing changes except withdrawals.

Speed: transactions go through raw web3 (ape is only used to build the vault), and each example
starts from one evm snapshot. CI default 200 examples x 20 steps; set VAULT_PROPERTY_EXAMPLES for
longer runs (e.g. 2500 as crvUSD does).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from vaultlib import BPS, E8, E18, Env
from web3 import Web3

from keeper.localnet.artifacts import load as load_artifact
from keeper.localnet.deploy import sqrt_price_x96

pytestmark = pytest.mark.chain

OUTCOMES: dict[tuple[str, bool], int] = {}  # (keeper call, succeeded) -> count, over the whole run
EXAMPLES = int(os.environ.get("VAULT_PROPERTY_EXAMPLES", "200"))
STEPS = int(os.environ.get("VAULT_PROPERTY_STEPS", "20"))
SYMBOLS = ("WETH", "WBTC", "LINK", "USDC")
PAIRS = (("WETH", "USDC"), ("USDC", "WETH"), ("WBTC", "USDC"), ("USDC", "WBTC"), ("WBTC", "WETH"),
         ("WETH", "WBTC"), ("LINK", "USDC"), ("USDC", "LINK"), ("LINK", "WETH"), ("WETH", "LINK"))


@dataclass
class Ctx:
    w3: Web3
    rpc: Any
    env: Env
    vault: str
    tokens: dict[str, str]
    feeds: dict[str, str]
    kv_names: list[str]
    asset_names: list[str]
    loss_cap_bps: int
    min_hf: int
    base_ts: int = 0
    base_snapshot: str = ""


LEG = "(address,address,address,uint24,uint256,bytes)"
SLOT0 = "(uint160,int24,uint16,uint16,uint16,uint8,bool)"
EXACT_IN = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"


class Rpc:
    """Raw eth_call / eth_sendTransaction with precomputed selectors: web3's contract layer costs
    ~20 ms per call in Python, which would make 4,000 steps take half an hour."""

    def __init__(self, w3: Web3, kv_types: str) -> None:
        self.w3 = w3
        self.kv_types = kv_types
        self._sel: dict[str, bytes] = {}

    def data(self, sig: str, *args: Any) -> str:
        if sig not in self._sel:
            self._sel[sig] = Web3.keccak(text=sig)[:4]
        types = sig[sig.index("(") + 1 : -1]
        body = abi_encode(_split(types), list(args)) if types else b""
        return "0x" + (self._sel[sig] + body).hex()

    def call(self, to: str, sig: str, *args: Any, out: str = "(uint256)") -> Any:
        tx = {"to": to, "data": self.data(sig, *args)}
        res = self.w3.provider.make_request("eth_call", [tx, "latest"])
        if "error" in res:
            raise RuntimeError(res["error"])
        return abi_decode(_split(out[1:-1]), bytes.fromhex(res["result"][2:]))

    def send(self, sender: str, to: str, sig: str, *args: Any) -> bool:
        """True when mined with status 1 (a revert is mined with status 0 and changes nothing)."""
        tx = {"from": sender, "to": to, "data": self.data(sig, *args), "gas": hex(5_000_000)}
        res = self.w3.provider.make_request("eth_sendTransaction", [tx])
        if "error" in res:
            return False
        for _ in range(2000):  # anvil automines, but the receipt can lag the reply by a moment
            got = self.w3.provider.make_request("eth_getTransactionReceipt", [res["result"]])
            rcpt = got["result"]
            if rcpt is not None:
                return int(rcpt["status"], 16) == 1
            time.sleep(0.001)
        raise TimeoutError(res["result"])


def _split(types: str) -> list[str]:
    """Split a top-level ABI type list on commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    return [*out, cur] if cur else out


def _abi_type(p: dict[str, Any]) -> str:
    if p["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in p["components"]) + ")" + p["type"][5:]
    return str(p["type"])


def _kv(ctx: Ctx) -> dict[str, Any]:
    (raw,) = ctx.rpc.call(ctx.vault, "keeperView()", out="(" + ctx.rpc.kv_types + ")")
    kv = dict(zip(ctx.kv_names, raw, strict=True))
    kv["assets"] = [dict(zip(ctx.asset_names, a, strict=True)) for a in kv["assets"]]
    return kv


def _state(kv: dict[str, Any]) -> tuple:
    """Everything a vault action can change, from one keeperView, but the pool balances (which
    interest moves with every block: see _unchanged)."""
    held = tuple(a["heldRaw"] for a in kv["assets"])
    return (kv["totalSupply"], kv["epoch"], held, kv["lastRebalanceTs"], kv["lastCollateralTs"],
            kv["lossInWindowE8"], kv["paused"])


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    """A reverted action changed nothing. Its transaction still took a block, in which the
    pool's aToken and debt token balances grew by that block's interest: they may only grow,
    and by at most a millionth (a supply, withdrawal, borrow or repay moves them far more)."""
    assert _state(after) == _state(before)
    for a, b in zip(before["assets"], after["assets"], strict=True):
        for key in ("suppliedRaw", "borrowedRaw"):
            assert a[key] <= b[key] <= a[key] + a[key] // 10**6 + 1, (key, a[key], b[key])


def _names(abi: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    fn = next(x for x in abi if x.get("name") == "keeperView")
    comps = fn["outputs"][0]["components"]
    assets = next(c for c in comps if c["name"] == "assets")["components"]
    return [c["name"] for c in comps], [c["name"] for c in assets]


class VaultMachine(RuleBasedStateMachine):
    ctx: Ctx  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        c = self.ctx
        c.w3.provider.make_request("evm_revert", [c.base_snapshot])
        c.base_snapshot = c.w3.provider.make_request("evm_snapshot", [])["result"]
        # every example starts one second after the base block, whatever the wall clock did
        c.w3.provider.make_request("evm_setTime", [c.base_ts + 1])
        e = c.env
        self.rpc, self.v = c.rpc, c.vault
        self.keeper, self.admin, self.guardian = (str(e.keeper.address), str(e.admin.address),
                                                  str(e.guardian.address))
        self.users = [str(e.alice.address), str(e.bob.address)]
        self.deployer = str(e.deployer.address)

    # ── helpers ──
    def _now(self) -> int:
        blk = self.ctx.w3.provider.make_request("eth_getBlockByNumber", ["latest", False])["result"]
        return int(blk["timestamp"], 16)

    def _price(self, symbol: str) -> int:
        out = "(uint80,int256,uint256,uint256,uint80)"
        return int(self.rpc.call(self.ctx.feeds[symbol], "latestRoundData()", out=out)[1])

    def _raw_for_usd(self, symbol: str, usd: int) -> int:
        decimals = self.ctx.env.market.tokens[symbol].decimals
        return usd * E8 * 10**decimals // max(self._price(symbol), 1)

    def _leg(self, a: str, b: str, amount: int) -> tuple:
        return self.ctx.env.leg(a, b, amount)

    def _keeper_action(self, sig: str, *args: Any, ripcord: bool = False,
                       deleverage: bool = False) -> None:
        """Send a keeper action (fresh ticket) and check the loss-cap and health invariants."""
        before = _kv(self.ctx)
        ticket = (self._now() + 600, int(before["epoch"]))
        ok = self.rpc.send(self.keeper, self.v, sig, *args, *ticket)
        after = _kv(self.ctx)
        OUTCOMES[(sig.split("(")[0], ok)] = OUTCOMES.get((sig.split("(")[0], ok), 0) + 1
        if not ok:
            _unchanged(before, after)
            return
        assert not before["paused"], "a keeper action succeeded while paused"
        assert before["feedsOk"], "a keeper action succeeded on a bad feed"
        nav0, nav1 = int(before["navE18"]), int(after["navE18"])
        assert nav0 - nav1 <= nav0 * self.ctx.loss_cap_bps // BPS + 1, (nav0, nav1)
        in_band = int(after["debtBase"]) == 0 or (
            after["healthFactor"] >= self.ctx.min_hf and after["ltvBps"] <= after["maxLtvBps"])
        if ripcord:
            assert after["ltvBps"] < before["ltvBps"]
        elif deleverage:
            # Supply/Repay: in band, or strictly less levered than before
            assert in_band or after["ltvBps"] < before["ltvBps"]
        else:
            assert in_band  # rebalance, Borrow, Withdraw: the ratio ends at or above its minimum

    # ── users ──
    @rule(user=st.integers(0, 1), usdc=st.integers(1, 200_000))
    def deposit(self, user: int, usdc: int) -> None:
        who = self.users[user]
        before = _kv(self.ctx)
        ok = self.rpc.send(who, self.v, "deposit(uint256,address)", usdc * 10**6, who)
        if before["paused"]:
            assert not ok
            _unchanged(before, _kv(self.ctx))

    @rule(user=st.integers(0, 1), part_bps=st.integers(100, BPS))
    def withdraw(self, user: int, part_bps: int) -> None:
        who = self.users[user]
        try:
            (max_redeem,) = self.rpc.call(self.v, "maxRedeem(address)", who)
        except RuntimeError:  # a bad feed makes the ERC-4626 views revert: nothing is priceable
            return
        # integer math: int(max_redeem * 1.0) rounds an 18-decimal share count up past the max
        shares = max_redeem * part_bps // BPS
        if shares == 0:
            return
        (supply0,) = self.rpc.call(self.v, "totalSupply()")
        ok = self.rpc.send(who, self.v, "redeem(uint256,address,address)", shares, who, who)
        assert ok, "a redeem under maxRedeem must succeed, paused or not"
        assert self.rpc.call(self.v, "totalSupply()")[0] == supply0 - shares

    @rule(symbol=st.sampled_from(SYMBOLS), usd=st.integers(1, 50_000))
    def donate(self, symbol: str, usd: int) -> None:
        amount = self._raw_for_usd(symbol, usd)
        token = self.ctx.tokens[symbol]
        self.rpc.send(self.deployer, token, "transfer(address,uint256)", self.v, amount)

    # ── market ──
    @rule(symbol=st.sampled_from(SYMBOLS[:3]), bps=st.integers(-300, 300))
    def oracle_step(self, symbol: str, bps: int) -> None:
        answer = self._price(symbol) * (BPS + bps) // BPS
        self.rpc.send(self.deployer, self.ctx.feeds[symbol], "setAnswer(int256)", answer)

    @rule(symbol=st.sampled_from(SYMBOLS[:3]),
          bps=st.integers(-1500, 1500))
    def price_move(self, symbol: str, bps: int) -> None:
        """Arbitrage every pool holding `symbol` to the new price, then move its feed (the same
        model as keeper.localnet.market.move_market, over the raw transport)."""
        m = self.ctx.env.market
        prices = {s: self._price(s) for s in SYMBOLS}
        prices[symbol] = prices[symbol] * (BPS + bps) // BPS
        for key, pool in m.pools.items():
            base, quote, fee = key.split("/")
            if symbol not in (base, quote):
                continue
            t0, t1 = sorted((m.tokens[base], m.tokens[quote]), key=lambda t: int(t.address, 16))
            target = sqrt_price_x96(t0, t1, prices)
            current = self.rpc.call(pool, "slot0()", out=SLOT0)[0]
            if target == current:
                continue
            tin, tout = (t1, t0) if target > current else (t0, t1)
            params = (tin.address, tout.address, int(fee), self.deployer, 2**63,
                      10 ** (tin.decimals + 9), 0, target)
            assert self.rpc.send(self.deployer, m.router, EXACT_IN, params)
        self.rpc.send(self.deployer, self.ctx.feeds[symbol], "setAnswer(int256)", prices[symbol])

    @rule()
    def crash(self) -> None:
        """WETH -35% in its pools and feed: the move that arms the ripcord (LTV ~44% -> ~68%)."""
        self.price_move("WETH", -3500)

    @rule(seconds=st.integers(60, 2 * 86400), refresh=st.sampled_from([True, True, True, False]))
    def time_travel(self, seconds: int, refresh: bool) -> None:
        self.ctx.w3.provider.make_request("evm_increaseTime", [seconds])
        self.ctx.w3.provider.make_request("evm_mine", [])
        if refresh:
            for s, feed in self.ctx.feeds.items():
                self.rpc.send(self.deployer, feed, "setAnswer(int256)", self._price(s))

    @rule(pause=st.booleans())
    def toggle_pause(self, pause: bool) -> None:
        paused = _kv(self.ctx)["paused"]
        if pause and not paused:
            assert self.rpc.send(self.guardian, self.v, "pause()")
        elif not pause and paused:
            assert self.rpc.send(self.admin, self.v, "unpause()")

    # ── keeper (trusted with timing only) ──
    @rule(frac=st.sampled_from([0.25, 0.5, 1.0, 1.5, -0.5]))
    def keeper_rebalance(self, frac: float) -> None:
        """frac 1.0 is a good plan, 1.5 overshoots, -0.5 moves away from target."""
        kv = _kv(self.ctx)
        if not kv["feedsOk"] or kv["navE18"] == 0:
            return
        legs = self._plan(kv, frac)
        if legs:
            self._keeper_action(f"rebalance({LEG}[],uint256,uint256)", legs)

    @rule(pair=st.sampled_from(PAIRS), usd=st.integers(100, 400_000))
    def keeper_random_leg(self, pair: tuple[str, str], usd: int) -> None:
        a, b = pair
        legs = [self._leg(a, b, self._raw_for_usd(a, usd))]
        self._keeper_action(f"rebalance({LEG}[],uint256,uint256)", legs)

    @rule(action=st.integers(0, 3), symbol=st.sampled_from(("WETH", "USDC")),
          usd=st.integers(1_000, 300_000))
    def keeper_collateral(self, action: int, symbol: str, usd: int) -> None:
        token = self.ctx.tokens[symbol]
        sig = "adjustCollateral(uint8,address,uint256,uint256,uint256)"
        self._keeper_action(sig, action, token, self._raw_for_usd(symbol, usd),
                            deleverage=action in (0, 3))

    @rule(usd=st.integers(1_000, 200_000))
    def keeper_ripcord(self, usd: int) -> None:
        legs = [self._leg("WETH", "USDC", self._raw_for_usd("WETH", usd))]
        self._keeper_action(f"ripcord({LEG}[],uint256,uint256,uint256)", legs, usd * 10**6,
                            ripcord=True)

    def _plan(self, kv: dict[str, Any], frac: float) -> list[tuple]:
        nav = int(kv["navE18"])
        legs = []
        for a in kv["assets"]:
            s = self.ctx.env.symbol(a["token"])
            if s == "USDC":
                continue
            gap = int((nav * int(a["targetBps"]) // BPS - int(a["netValueE18"])) * frac)
            if gap < 0:
                raw = (-gap) * 10 ** int(a["decimals"]) * E8 // (int(a["answer"]) * E18)
                raw = min(raw, int(a["heldRaw"]))
                if raw:
                    legs.append(self._leg(s, "USDC", raw))
            elif gap > 0:
                legs.append(self._leg("USDC", s, gap * 10**6 // E18))
        return legs

    # ── invariants ──
    @invariant()
    def supply_is_sum_of_balances(self) -> None:
        holders = [*self.users, self.keeper, self.admin, self.deployer]
        total = sum(self.rpc.call(self.v, "balanceOf(address)", h)[0] for h in holders)
        assert total == self.rpc.call(self.v, "totalSupply()")[0]


def test_vault_state_machine(balanced: Env, w3: Web3) -> None:
    env = balanced
    # a collateral position to defend: 60 WETH supplied, 60k USDC borrowed (LTV ~44%)
    env.adjust(0, "WETH", 60 * E18)
    env.warp(3601)
    env.adjust(2, "USDC", 60_000 * 10**6)
    env.warp(3601)
    abi = load_artifact("RebalancingVault").abi
    kv_abi = next(x for x in abi if x.get("name") == "keeperView")["outputs"][0]
    kv_names = [c["name"] for c in kv_abi["components"]]
    asset_names = [c["name"] for c in kv_abi["components"][0]["components"]]
    lim, col = env.vault.limits(), env.vault.collateralParams()
    rpc = Rpc(w3, _abi_type(kv_abi))
    for t in env.market.tokens.values():  # the deployer arbitrages the pools in price_move
        rpc.send(str(env.deployer.address), t.address, "approve(address,uint256)",
                 env.market.router, 2**256 - 1)
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    VaultMachine.ctx = Ctx(
        w3=w3, rpc=rpc, env=env, vault=env.vault.address,
        tokens={s: t.address for s, t in env.market.tokens.items()}, feeds=dict(env.market.feeds),
        kv_names=kv_names, asset_names=asset_names, loss_cap_bps=int(lim.lossCapBps),
        min_hf=int(col.minHealthFactor), base_snapshot=snap,
        base_ts=int(w3.eth.get_block("latest")["timestamp"]),
    )
    run_state_machine_as_test(
        VaultMachine,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                          database=None, derandomize=os.environ.get("CI") is not None,
                          suppress_health_check=list(HealthCheck)),
    )
    w3.provider.make_request("evm_revert", [VaultMachine.ctx.base_snapshot])
    print("keeper outcomes (call, ok) -> n:", dict(sorted(OUTCOMES.items())))
    # not vacuous: the keeper both succeeded and was refused, for rebalances and collateral moves
    if EXAMPLES >= 50:
        for call in ("rebalance", "adjustCollateral", "ripcord"):
            assert OUTCOMES.get((call, True), 0) > 0 and OUTCOMES.get((call, False), 0) > 0, call
