"""The live side of a replay: a local anvil with the local market and a vault, and the keeper's
own pipeline ticking once per hour of the window.

Each hour: the chain's clock goes to the hour (`evm_setNextBlockTimestamp`), every pool and feed
moves to the hour's prices (arbitrage swaps, `keeper.localnet.market.move_market_to`), one block
is mined with the hour's gas as its base fee (`anvil_setNextBlockBaseFeePerGas`), and the keeper
ticks once in SEND mode: read, forecast, decide, plan, simulate on a fork, send. The keeper
samples the hour's gas from that block (one block of `eth_feeHistory`), and its price history
and gas history start from the window's history rows, the ones the backtester fits on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from keeper.app import Keeper, Mode
from keeper.chain import raw
from keeper.chain.anvil import Anvil
from keeper.config import KeeperConfig, PolicyConfig, PoolCostConfig
from keeper.costs import depth_from_liquidity
from keeper.demo import deploy_local_stack
from keeper.errors import ChainError
from keeper.localnet import chain
from keeper.localnet.deploy import LocalMarket
from keeper.localnet.vault import deposit_usdc
from keeper.models import GasHour, TickResult, VaultState
from keeper.policy import make_policy
from keeper.read import ReadTarget, read_snapshot
from keeper.replay.mover import Mover
from keeper.replay.window import CASH, Window
from keeper.units import BPS, ONE_E8, ONE_E18
from keeper.wiring import build_keeper, load, policies_for

HOUR_S = 3600
ENV_RPC = "LOCAL_RPC"  # the local network of networks.yaml reads its RPC URL from here
OPENING_DEPOSIT_BPS = 400  # of the NAV: pushes USDC past the inner band, so the keeper trades


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveHour:
    """What the live keeper did in one hour, and the vault before and after."""

    t: int
    ts: int
    result: TickResult
    before: VaultState
    after: VaultState
    hour_gas_wei: int  # the hour's base fee, from the gas data
    gas_used: int = 0
    gas_price_wei: int = 0  # the transaction's effective price
    eth_usd: float = 0.0

    @property
    def sent(self) -> bool:
        return self.result.verdict == "sent"


@dataclass(slots=True)
class LiveWorld:
    anvil: Anvil
    w3: Web3
    market: LocalMarket
    vault: str
    keeper: Keeper
    cfg: KeeperConfig
    tokens: tuple[str, ...]
    mover: Mover
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.keeper.close()
        self.anvil.stop()


def open_world(win: Window, config: Path, state_dir: Path, *, nav_usd: int, port: int | None,
               policy: PolicyConfig | None, say: Callable[[str], None]) -> LiveWorld:
    """Anvil at the window's first hour, the market at its prices, a vault at its targets, and a
    keeper configured from `config`'s local network (policy and pool costs for the replay)."""
    anvil = Anvil(port=port, extra_args=("--timestamp", str(win.ts(win.i0) - HOUR_S))).start()
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        # block time moves only when the replay moves it: every block of an hour carries the
        # hour's timestamp, as the backtester's clock does
        raw.call(w3, "anvil_setBlockTimestampInterval", [0])
        start = {s: win.price_e8(win.i0, s) for s in ("WETH", "WBTC", "LINK", CASH)}
        deposit = nav_usd * OPENING_DEPOSIT_BPS // BPS
        market, _ = deploy_local_stack(w3, state_dir, start, nav_usd - deposit, say=say)
        cfg = _load_local(config, anvil.url)
        mover = Mover(w3, market)
        costs, notes = measure_pool_costs(mover, win, cfg)
        cfg = replay_config(cfg, policy, costs)
        keeper = build_keeper(cfg, can_send=True)
    except BaseException:
        anvil.stop()
        raise
    keeper.deps.gas_sample_blocks = 1  # the hour's gas lives in the block the replay mines
    vault = market.vaults["main"]
    state = read_vault(w3, market, vault)
    world = LiveWorld(anvil=anvil, w3=w3, market=market, vault=vault, keeper=keeper, cfg=cfg,
                      tokens=tuple(a.symbol for a in state.assets), mover=mover, notes=notes)
    keeper.recover()
    seed_history(world, win)
    say(open_vault(world, win, deposit))
    return world


def open_vault(world: LiveWorld, win: Window, deposit_usd: int) -> str:
    """The vault enters the window in service: a USDC deposit arrives and, at the window's first
    hour, the keeper's first rebalance (the threshold rule at the inner band) puts it to work.
    A vault's first rebalance also writes its bookkeeping slots from zero, once in its life;
    the gas table is measured on a vault in service, and so is the window. It also sets the
    vault's last rebalance to the window's start, where the backtester's clock starts."""
    w3, market = world.w3, world.market
    depositor = list(w3.eth.accounts)[3]
    deposit_usdc(w3, market, chain.at(w3, "RebalancingVault", world.vault), depositor,
                 deposit_usd)
    move_to_hour(world, win, win.i0)  # the feeds' rounds of the first hour, and its gas
    name = world.cfg.vaults[0].name
    policies = world.keeper.deps.policies
    kept, inner = policies[name], world.cfg.vaults[0].bands.inner_bps
    policies[name] = make_policy("threshold", {"width_bps": inner})
    try:
        (result,) = world.keeper.tick(Mode.SEND)
    finally:
        policies[name] = kept
    if result.verdict != "sent":
        raise ChainError(f"the vault's opening rebalance was not sent ({result.verdict}): "
                         f"{result.reason}")
    return (f"opening: a ${deposit_usd:,} USDC deposit, put to work by the keeper's first "
            f"rebalance (tx {result.tx_hash}, gas {result.gas_used:,}), so the window starts "
            "with a vault in service at its targets")


def _load_local(config: Path, rpc: str) -> KeeperConfig:
    """The config's local network, with LOCAL_RPC pointing at the replay's anvil while it loads
    (the variable is put back afterwards)."""
    before = os.environ.get(ENV_RPC)
    os.environ[ENV_RPC] = rpc
    try:
        return load(config, "local")
    finally:
        if before is None:
            os.environ.pop(ENV_RPC, None)
        else:
            os.environ[ENV_RPC] = before


def replay_config(cfg: KeeperConfig, policy: PolicyConfig | None,
                  pool_costs: dict[str, PoolCostConfig]) -> KeeperConfig:
    """The config with the replay's policy on its first vault and the measured pool costs (a
    pool cost the file sets itself wins); the policy is checked as at load time."""
    vault = cfg.vaults[0]
    if policy is not None:
        vault = vault.model_copy(update={"policy": policy})
    network = cfg.network.model_copy(
        update={"pool_costs": {**pool_costs, **cfg.network.pool_costs}})
    out = cfg.model_copy(update={"vaults": (vault,), "network": network})
    policies_for(out)
    return out


# ------------------------------------------------------------------ the cost model's pools


def measure_pool_costs(mover: Mover, win: Window, cfg: KeeperConfig
                       ) -> tuple[dict[str, PoolCostConfig], list[str]]:
    """Each risky token's cheapest pool against USDC, with its depth at the thinnest point of the
    window. The local pools hold nested positions around the start price (+-10%, +-60%, full
    range), so depth only falls as the price moves away: the thinnest point is one of the
    window's extreme prices. Measured on a chain snapshot that is then reverted."""
    w3, market = mover.w3, mover.market
    tokens = [s for s in market.tokens if s != CASH and s in cfg.contracts.feeds]
    keys = {t: k for t in tokens if (k := _cash_pool(market, t)) is not None}
    depths: dict[str, list[float]] = {t: [] for t in keys}
    snap = raw.call(w3, "evm_snapshot", [])
    try:
        for pick in (min, max):
            prices = {t: pick(win.price(r, t) for r in win.rows) for t in tokens}
            mover.move({**{t: round(p * ONE_E8) for t, p in prices.items()}, CASH: ONE_E8})
            for t, key in keys.items():
                depths[t].append(_depth(w3, market, key, t, prices[t]))
    finally:
        raw.call(w3, "evm_revert", [snap])
    out = {t: PoolCostConfig(fee_ppm=int(keys[t].split("/")[2]), depth_usd=min(d))
           for t, d in depths.items()}
    notes = [f"{t}: pool {keys[t]}, depth ${c.depth_usd / 1e6:,.1f}M at the window's thinnest "
             "point" for t, c in out.items()]
    return out, notes


def _cash_pool(market: LocalMarket, token: str) -> str | None:
    keys = [k for k in market.pools if set(k.split("/")[:2]) == {token, CASH}]
    return min(keys, key=lambda k: int(k.split("/")[2]), default=None)


def _depth(w3: Web3, market: LocalMarket, key: str, token: str, price: float) -> float:
    pool = chain.at(w3, "UniswapV3Pool", market.pools[key])
    liquidity = int(pool.functions.liquidity().call())
    sqrt_x96 = int(pool.functions.slot0().call()[0])
    a, b = market.tokens[token], market.tokens[CASH]
    t0, t1 = sorted((a, b), key=lambda t: int(t.address, 16))
    usd1 = 1.0 if t1.symbol == CASH else price
    return depth_from_liquidity(liquidity, sqrt_x96, t0.decimals, t1.decimals, usd1)


# ------------------------------------------------------------------ history


def seed_history(world: LiveWorld, win: Window) -> None:
    """The keeper's price and gas history start with the window's history rows (what the
    backtester fits on), and its forecaster fits on them now, as the backtester does."""
    history, chain_id = world.keeper.deps.history, world.cfg.network.chain_id
    history.seed_prices(world.vault, win.history(world.tokens))
    history.record_gas(chain_id, [GasHour(hour_ts=win.ts(t), base_fee_wei=win.gas_wei(t), tip_wei=0)
                                  for t in range(win.i0)])
    oracle = history.oracle_history(world.vault, len(world.tokens))
    world.keeper.deps.forecaster.prime(read_vault(world.w3, world.market, world.vault), oracle)


# ------------------------------------------------------------------ one hour


def move_to_hour(world: LiveWorld, win: Window, t: int) -> None:
    """The chain's clock, every pool and feed go to hour t in one block; then the hour's gas
    block, which the keeper's snapshot and gas sample read."""
    world.mover.move({s: win.price_e8(t, s) for s in world.tokens}, at_ts=win.ts(t))
    mine_gas_block(world.w3, win.gas_wei(t))


def mine_gas_block(w3: Web3, base_fee_wei: int) -> None:
    """An empty block with `base_fee_wei` as its base fee; the next block (the keeper's
    transaction) pays the same."""
    fee = hex(base_fee_wei)
    raw.call(w3, "anvil_setNextBlockBaseFeePerGas", [fee])
    raw.call(w3, "evm_mine", [])
    raw.call(w3, "anvil_setNextBlockBaseFeePerGas", [fee])


def play_hour(world: LiveWorld, win: Window, t: int) -> LiveHour:
    """Move the world to hour t, tick the keeper once, and look at the vault after."""
    move_to_hour(world, win, t)
    before = read_vault(world.w3, world.market, world.vault)
    (result,) = world.keeper.tick(Mode.SEND)
    hour = LiveHour(t=t, ts=win.ts(t), result=result, before=before, after=before,
                    hour_gas_wei=win.gas_wei(t))
    if result.verdict != "sent" or not result.tx_hash:
        return hour
    receipt: Any = world.w3.eth.get_transaction_receipt(result.tx_hash)  # type: ignore[arg-type]
    after = read_vault(world.w3, world.market, world.vault)
    eth = next((a.feed.answer / 10**a.feed.decimals for a in before.assets
                if a.symbol == "WETH"), 0.0)
    return LiveHour(t=t, ts=hour.ts, result=result, before=before, after=after,
                    hour_gas_wei=hour.hour_gas_wei, gas_used=int(receipt["gasUsed"]),
                    gas_price_wei=int(receipt["effectiveGasPrice"]), eth_usd=eth)


def read_vault(w3: Web3, market: LocalMarket, vault: str) -> VaultState:
    symbols = {t.address.lower(): s for s, t in market.tokens.items()}
    snap = read_snapshot(w3, market.multicall3, [ReadTarget(address=vault, symbols=symbols)],
                         chain_id=market.chain_id)
    return snap.vaults[0]


def nav_usd(state: VaultState) -> float:
    return state.nav_e18 / ONE_E18
