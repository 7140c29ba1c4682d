"""`keeper demo`: anvil + the local market + a vault + the scheduler, against a scripted market.

Each step of the scripted market is one hour of block time: the chain clock jumps an hour, every
asset moves by that hour's real return (from ../shared/data when present, else a seeded random
walk) in every pool and feed, and the scheduler's keeper ticks in between, sending real
transactions from an encrypted keystore account.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from eth_account import Account
from web3 import Web3

from keeper.chain import raw
from keeper.chain.anvil import Anvil
from keeper.errors import DataError
from keeper.forecast.live import DEFAULT_VOL_PER_H
from keeper.localnet.deploy import LocalMarket, deploy_market, write_deployments
from keeper.localnet.mainnet import market_for
from keeper.localnet.market import move_market, set_feed
from keeper.localnet.node import DevNode
from keeper.localnet.vault import (
    VaultSetup,
    deploy_vault,
    deposit_usdc,
    fund_by_swaps,
    seed_basket,
)
from keeper.models import TickResult
from keeper.paths import project_root
from keeper.units import BPS

HOUR_S = 3600
COLUMNS = {"WETH": "eth_usdt_close", "WBTC": "btc_usdt_close", "LINK": "link_usdt_close"}
SYMBOLS = ("WETH", "WBTC", "LINK")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    hours: int = 72
    port: int = 8545
    start: str = "2022-06-10 00:00:00"  # the June 2022 crash: ETH fell ~30% in days
    prices: Path | None = None  # default: ../shared/data/prices_hourly_2019_2023.csv
    seed: int = 7
    nav_usd: int = 1_000_000
    step_s: float = 0.4  # wall time per simulated hour, while the scheduler ticks
    state_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class DemoWorld:
    anvil: Anvil
    w3: Web3
    market: LocalMarket
    vault: str
    keeper: str


# ------------------------------------------------------------------ the scripted market


def hourly_returns_bps(s: DemoSettings) -> tuple[str, list[dict[str, int]]]:
    """Per-hour moves in bps per asset, and a description of where they came from."""
    path = s.prices or project_root().parent / "shared" / "data" / "prices_hourly_2019_2023.csv"
    if path.exists():
        return f"real hourly returns from {path.name} starting {s.start}", _from_file(path, s)
    rng = np.random.default_rng(s.seed)
    steps = [
        {sym: round(rng.normal(0.0, DEFAULT_VOL_PER_H[sym]) * BPS) for sym in SYMBOLS}
        for _ in range(s.hours)
    ]
    return f"seeded random walk (seed {s.seed}; no shared price file found)", steps


def start_prices_e8(s: DemoSettings) -> dict[str, int] | None:
    """The window's first prices, so the local market starts where the returns start."""
    path = s.prices or project_root().parent / "shared" / "data" / "prices_hourly_2019_2023.csv"
    if not path.exists():
        return None
    with path.open() as f:
        row = next(r for r in csv.DictReader(f) if r["timestamp"] >= s.start)
    return {**{sym: int(float(row[c]) * 10**8) for sym, c in COLUMNS.items()}, "USDC": 10**8}


def _from_file(path: Path, s: DemoSettings) -> list[dict[str, int]]:
    rows: list[dict[str, str]] = []
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["timestamp"] >= s.start:
                rows.append(row)
            if len(rows) > s.hours:
                break
    if len(rows) <= s.hours:
        raise DataError(
            f"{path}: fewer than {s.hours + 1} hours after {s.start}: choose an earlier --start"
        )
    return [
        {sym: _bps(float(a[COLUMNS[sym]]), float(b[COLUMNS[sym]])) for sym in SYMBOLS}
        for a, b in itertools.pairwise(rows)
    ]


def _bps(p0: float, p1: float) -> int:
    return round((p1 / p0 - 1.0) * BPS) if p0 > 0 and math.isfinite(p1 / p0) else 0


# ------------------------------------------------------------------ setting up the world


def archive_previous_run(state_dir: Path) -> Path | None:
    """Each demo starts a new chain, so the last run's ledger, price history and job store
    describe a chain that is gone (its epoch locks would refuse the new vault's epoch 0). They
    are moved to state/archive/<UTC time>/, never deleted. Returns where, or None."""
    stores = sorted(state_dir.glob("*.sqlite*")) if state_dir.is_dir() else []
    if not stores:
        return None
    dest = state_dir / "archive" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest.mkdir(parents=True)
    for path in stores:
        path.rename(dest / path.name)
    return dest


def keystore_files(state_dir: Path) -> tuple[Path, Path]:
    return state_dir / "keeper-keystore.json", state_dir / "keeper-passphrase.txt"


def make_keeper_keystore(state_dir: Path) -> str:
    """A fresh keeper key, encrypted; the passphrase goes to a 0600 file. Returns the address."""
    keystore, passfile = keystore_files(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(24)
    account = Account.create()
    passfile.write_text(passphrase + "\n")
    os.chmod(passfile, 0o600)
    keystore.write_text(json.dumps(Account.encrypt(account.key, passphrase)))
    os.chmod(keystore, 0o600)
    return str(account.address)


def deploy_local_stack(
    w3: Web3,
    state_dir: Path,
    prices_e8: dict[str, int] | None = None,
    nav_usd: int = 1_000_000,
    deployments: Path | None = None,
    say: Callable[[str], None] = lambda _line: None,
    mainnet_addresses: bool = False,
) -> tuple[LocalMarket, str]:
    """Market + keystore keeper + configured, seeded vault; writes the addresses to
    `deployments` (default deployments/local.json). Shared by `keeper demo` and
    `ape run deploy_local`. A new keeper key and vault make the ledger, history and job store
    in `state_dir` stale, so they are archived first. With `mainnet_addresses` the market is
    the one at the canonical mainnet addresses (the replica, placed unless the chain is a fork
    of mainnet that has it) and the vault is funded with tokens bought for ETH, as on a fork.
    Returns (market with vault, keeper)."""
    archived = archive_previous_run(state_dir)
    if archived:
        say(f"the previous run's ledger and history moved to {archived}")
    acc = list(w3.eth.accounts)
    deploy = market_for if mainnet_addresses else deploy_market
    market = deploy(w3, acc[0], prices_e8)
    keeper = make_keeper_keystore(state_dir)
    DevNode(w3).set_balance(keeper, 10 * 10**18)
    vault = deploy_vault(
        w3, market, admin=acc[0], keeper=keeper, guardian=acc[2], setup=VaultSetup(cooldown_s=1800)
    )
    if mainnet_addresses:
        fund_by_swaps(w3, market, vault, acc[3], nav_usd, deposit_usd=10_000)
    else:
        deposit_usdc(w3, market, vault, acc[3], 10_000)
        seed_basket(w3, market, vault, nav_usd)
    market = market.with_vault("main", vault.address)
    write_deployments(market, deployments or project_root() / "deployments" / "local.json")
    return market, keeper


def build_world(s: DemoSettings, state_dir: Path, say: Callable[[str], None]) -> DemoWorld:
    anvil = Anvil(port=s.port).start()
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    market, keeper = deploy_local_stack(w3, state_dir, start_prices_e8(s), s.nav_usd, say=say)
    vault = market.vaults["main"]
    say(f"anvil on {anvil.url}; local market and vault {vault} deployed; keeper {keeper}")
    return DemoWorld(anvil=anvil, w3=w3, market=market, vault=vault, keeper=keeper)


def advance_hour(world: DemoWorld, moves: dict[str, int]) -> None:
    """One hour of block time, then every asset's move (and a fresh USDC round)."""
    w3 = world.w3
    raw.call(w3, "evm_increaseTime", [HOUR_S])
    raw.call(w3, "evm_mine", [])
    for sym, bps in moves.items():
        if bps:
            move_market(w3, world.market, sym, bps)
        else:
            set_feed(w3, world.market, sym, _answer(world, sym))
    set_feed(w3, world.market, "USDC", _answer(world, "USDC"))


def _answer(world: DemoWorld, sym: str) -> int:
    from keeper.localnet.market import feed_answer

    return feed_answer(world.w3, world.market, sym)[0]


# ------------------------------------------------------------------ summary


@dataclass(slots=True)
class DemoStats:
    steps: int = 0
    outside_outer: int = 0
    rebalances: int = 0
    rejected: int = 0
    holds: int = 0
    gas_used: int = 0
    fees_wei: int = 0

    def on_result(self, r: TickResult) -> None:
        if r.verdict == "sent":
            self.rebalances += 1
            self.gas_used += r.gas_used or 0
        elif r.verdict in ("rejected", "failed", "error"):
            self.rejected += 1
        else:
            self.holds += 1


def now_utc() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")
