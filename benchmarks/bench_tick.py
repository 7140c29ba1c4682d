"""Tick latency (read + forecast + decide + plan, no send) for 1, 10 and 100 vaults, and RPC
round trips, with the shipped networks.yaml's policy (the default config) and 90 days of hourly
price and gas history per vault, so the forecast fits and filters as it does in production.

Goal: 100 vaults under 1 s, with round trips per tick independent of the vault count.
Reported: the median of 5 ticks after the first, and the first tick alone (the forecast fits its
model once per vault, then reuses it for a week of new history).
Run: `make bench` or `.venv/bin/python -m benchmarks.bench_tick`.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from web3 import Web3

from benchmarks._common import RESULTS, counting_keeper, shipped_policy, stack
from keeper.app import Keeper, Mode
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market
from keeper.models import GasHour

SIZES = (1, 10, 100)
REPEATS = 5
HISTORY_H = 24 * 90
VOL_PER_H = (0.0075, 0.0060, 0.0110, 0.0)  # WETH, WBTC, LINK, USDC


def seed_history(keeper: Keeper, now_ts: int, seed: int = 1) -> None:
    """90 days of hourly prices (a correlated random walk at typical vols) for every vault and
    of gas for the chain, ending at the current hour."""
    rng = np.random.default_rng(seed)
    hours = (now_ts // 3600 - np.arange(HISTORY_H)[::-1]) * 3600
    z = rng.standard_normal((HISTORY_H, 3)) @ np.linalg.cholesky(
        np.array([[1, 0.8, 0.6], [0.8, 1, 0.6], [0.6, 0.6, 1]])).T
    px = np.exp(np.cumsum(z * np.array(VOL_PER_H[:3]), axis=0)) * np.array([3000, 60000, 15.0])
    rows = [(int(h), (*map(float, p), 1.0)) for h, p in zip(hours, px, strict=True)]
    history = keeper.deps.history
    for v in keeper.cfg.vaults:
        history.seed_prices(str(v.address), rows)
    gwei = 20 * np.exp(0.3 * rng.standard_normal(HISTORY_H))
    history.record_gas(keeper.cfg.network.chain_id, [
        GasHour(hour_ts=int(h), base_fee_wei=int(g * 1e9), tip_wei=10**9)
        for h, g in zip(hours, gwei, strict=True)])


def measure(keeper, provider) -> tuple[float, float, int, list[str]]:  # type: ignore[no-untyped-def]
    times, trips = [], 0
    for _ in range(REPEATS + 1):
        keeper.last_block = None
        provider.requests = 0
        t = time.perf_counter()
        results = keeper.tick(Mode.CHECK)
        times.append(time.perf_counter() - t)
        trips = provider.requests
    return times[0], statistics.median(times[1:]), trips, sorted({r.verdict for r in results})


def main() -> None:
    rows = []
    policy = shipped_policy()
    with Anvil(extra_args=("--gas-limit", "300000000")) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        t0 = time.perf_counter()
        market, cfg, keeper_addr = stack(w3, anvil.url, max(SIZES), policy=policy)
        print(f"setup of {max(SIZES)} vaults ({policy}): {time.perf_counter() - t0:.1f} s")
        for case in ("in band (hold)", "out of band (plan)"):
            if case.startswith("out"):
                move_market(w3, market, "WETH", 3_000)
            for n in SIZES:
                keeper, provider = counting_keeper(
                    cfg, anvil.url, keeper_addr, [f"v{i}" for i in range(n)]
                )
                seed_history(keeper, int(w3.eth.get_block("latest")["timestamp"]))
                first, median, trips, verdicts = measure(keeper, provider)
                rows.append((case, n, median, first, trips, ",".join(verdicts)))
                print(f"{case:20s} {n:4d} vaults: {median * 1000:8.1f} ms (first tick "
                      f"{first * 1000:.0f} ms), {trips} trips, {verdicts}")
    lines = [
        f"Policy: the shipped networks.yaml's ({policy}); 90 days of hourly price and gas "
        "history per vault.",
        "",
        "| case | vaults | tick latency (median of 5) | first tick (fits the model) "
        "| RPC round trips | verdicts |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {c} | {n} | {m * 1000:.0f} ms | {f * 1000:.0f} ms | {t} | {v} |"
              for c, n, m, f, t, v in rows]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tick.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
