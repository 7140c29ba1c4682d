"""The local stack a demo, a replay and `ape run deploy_local` start from: the local market, a
keeper key in an encrypted keystore, and a configured vault at its target weights.

A new chain makes the last run's ledger, history and job store stale, so they are archived first
(never deleted). `keeper demo` itself is a short replay (`keeper.demo_run`, `keeper.replay`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from eth_account import Account
from web3 import Web3

from keeper.localnet.deploy import LocalMarket, deploy_market, write_deployments
from keeper.localnet.mainnet import market_for
from keeper.localnet.node import DevNode
from keeper.localnet.vault import (
    DEFAULT_TARGETS,
    VaultSetup,
    deploy_vault,
    deposit_usdc,
    fund_by_swaps,
    seed_basket,
)
from keeper.paths import project_root
from keeper.units import BPS

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
        # the depositor brings the USDC share of the NAV; the rest is seeded at target, so the
        # vault starts exactly on its targets (as a backtest of the same vault does)
        deposit_usdc(w3, market, vault, acc[3], nav_usd * DEFAULT_TARGETS["USDC"] // BPS)
        seed_basket(w3, market, vault, nav_usd, skip=("USDC",))
    market = market.with_vault("main", vault.address)
    write_deployments(market, deployments or project_root() / "deployments" / "local.json")
    return market, keeper
