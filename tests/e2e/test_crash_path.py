"""Black Thursday on the real Aave v3 Pool: 2020-03-12 00:00 -> 2020-03-13 06:00 UTC, the real
hourly closes of ../shared/data (ETH fell 50% at the low, with a -21% hour). A $1M vault with
80% of its WETH supplied to Aave and USDC borrowed at its 50% target LTV rides the path hour by
hour twice, from the same state:

- keeper stopped: after every hourly move a third-party liquidator liquidates the vault whenever
  Aave allows it (health factor under 1);
- keeper running: after every hourly move the liquidator looks first, then the keeper runs one
  tick (read, decide, plan, fork simulation, send), then the liquidator looks again.

Each run measures the liquidations, what they cost the vault (collateral taken beyond the debt
repaid, at the pool's prices) and the lowest health factor seen right after a move. With
VAULT_CRASH_REPORT=1 the table goes to benchmarks/results/crash_path.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from web3 import Web3

from keeper.app import Keeper, Mode
from keeper.chain.anvil import Anvil
from keeper.config import load_config
from keeper.localnet.deploy import LocalMarket, deploy_market
from keeper.localnet.liquidator import Liquidation, Liquidator, account_value_e8
from keeper.replay.mover import Mover
from keeper.replay.run import TOKENS
from keeper.replay.window import Window, load_window
from keeper.wiring import build_keeper
from tests.e2e.conftest import KeeperEnv
from tests.e2e.lending import LEVERED, levered_env

pytestmark = [pytest.mark.chain, pytest.mark.realdata]
ROOT = Path(__file__).resolve().parents[2]
# ../shared/data beside the checkout (as CI has it), or where VAULT_SHARED_DATA points
DATA = Path(os.environ.get("VAULT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PRICES = DATA / "prices_hourly_2019_2023.csv"
START, HOURS = "2020-03-12 00:00:00", 30
REPORT = ROOT / "benchmarks" / "results" / "crash_path.md"
RESULTS: dict[str, Outcome] = {}


@dataclass
class Outcome:
    start_value_e8: int
    liquidations: list[Liquidation] = field(default_factory=list)
    min_health_factor_e18: int = 2**256 - 1
    keeper_txs: dict[str, int] = field(default_factory=dict)

    @property
    def loss_e8(self) -> int:
        return sum(liq.loss_e8 for liq in self.liquidations)


@dataclass
class Crash:
    w3: Web3
    market: LocalMarket
    env: KeeperEnv
    window: Window
    mover: Mover
    liquidator: Liquidator
    snapshot: str


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crash]:
    if not PRICES.is_file():
        pytest.fail(f"real data not found at {PRICES}: the suite expects ../shared/data beside "
                    "the checkout, as CI has it")
    window = load_window(PRICES, None, START, HOURS + 1, TOKENS)  # the start and HOURS moves
    with Anvil(extra_args=("--base-fee", "1000000000")) as anvil:
        # eth_chainId answered once: web3 asks it before every call (a third of the RPCs)
        provider = Web3.HTTPProvider(anvil.url, cache_allowed_requests=True)
        w3 = Web3(provider)
        start = {s: window.price_e8(window.i0, s) for s in TOKENS}
        market: LocalMarket = deploy_market(w3, w3.eth.accounts[0], start)
        env = levered_env(w3, market, anvil.url, tmp_path_factory.mktemp("crash"))
        mover = Mover(w3, market)
        liquidator = Liquidator(w3, market, w3.eth.accounts[9])
        snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        yield Crash(w3, market, env, window, mover, liquidator, snap)


def _replay(c: Crash, keeper: Keeper | None) -> Outcome:
    w3, vault = c.w3, c.env.vault
    w3.provider.make_request("evm_revert", [c.snapshot])  # type: ignore[arg-type]
    c.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    out = Outcome(start_value_e8=account_value_e8(w3, c.market, vault))
    for t in list(c.window.rows)[1:]:  # an hour of block time, then the pools and feeds move
        w3.provider.make_request("evm_increaseTime", [3600])  # type: ignore[arg-type]
        c.mover.move({s: c.window.price_e8(t, s) for s in TOKENS})
        out.min_health_factor_e18 = min(
            out.min_health_factor_e18, c.liquidator.health_factor(vault)
        )
        out.liquidations += c.liquidator.sweep(vault)
        if keeper is None:
            continue
        for r in keeper.tick(Mode.SEND):
            if r.verdict == "sent":
                kind = r.details.get("kind", r.action)
                out.keeper_txs[kind] = out.keeper_txs.get(kind, 0) + 1
        out.liquidations += c.liquidator.sweep(vault)
    return out


def test_keeper_stopped_the_crash_gets_the_vault_liquidated(crash: Crash) -> None:
    out = RESULTS["stopped"] = _replay(crash, None)
    assert out.liquidations, "the crash should have liquidated an unattended 50% LTV"
    assert out.min_health_factor_e18 < 10**18
    assert out.loss_e8 > 0


def test_keeper_running_the_same_crash_ends_without_liquidation(crash: Crash) -> None:
    keeper = build_keeper(load_config(crash.env.config), can_send=True)
    out = RESULTS["running"] = _replay(crash, keeper)
    assert out.liquidations == []
    assert out.min_health_factor_e18 >= 10**18
    # the collateral rule acted: deleverages (band) or ripcords (at the trigger)
    assert out.keeper_txs.get("deleverage", 0) + out.keeper_txs.get("ripcord", 0) > 0
    _report()


def _report() -> None:
    rows = [
        "| keeper | liquidations | vault loss to liquidations | min health factor after a move "
        "| keeper transactions |",
        "|---|---:|---:|---:|---|",
    ]
    for name, o in RESULTS.items():
        txs = ", ".join(f"{v} {k}" for k, v in sorted(o.keeper_txs.items())) or "none"
        rows.append(
            f"| {name} | {len(o.liquidations)} | ${o.loss_e8 / 1e8:,.0f} "
            f"({o.loss_e8 * 10_000 / o.start_value_e8:.0f} bps) | "
            f"{o.min_health_factor_e18 / 1e18:.3f} | {txs} |"
        )
    head = (
        f"Crash path {START} UTC + {HOURS} h (real hourly closes), $1M vault, 80% of its WETH "
        f"supplied to Aave v3, USDC borrowed at {LEVERED.target_ltv_bps / 100:.0f}% LTV "
        f"(band {LEVERED.min_ltv_bps / 100:.0f}-{LEVERED.max_ltv_bps / 100:.0f}%, ripcord "
        f"{LEVERED.ripcord_ltv_bps / 100:.0f}%), WETH liquidation threshold 83%, bonus 5%.\n"
    )
    text = head + "\n" + "\n".join(rows) + "\n"
    print("\n" + text)
    if os.environ.get("VAULT_CRASH_REPORT") == "1":
        REPORT.write_text("# Crash path: keeper stopped vs running\n\n" + text)
