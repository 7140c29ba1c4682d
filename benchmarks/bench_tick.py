"""Tick latency (read + decide + plan, no send) for 1, 10 and 100 vaults, and RPC round trips.

Goal: 100 vaults under 1 s, with round trips per tick independent of the vault count.
Run: `make bench` or `.venv/bin/python benchmarks/bench_tick.py`.
"""

from __future__ import annotations

import statistics
import time

from web3 import Web3

from benchmarks._common import RESULTS, counting_keeper, stack
from keeper.app import Mode
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market

SIZES = (1, 10, 100)
REPEATS = 5


def measure(keeper, provider) -> tuple[float, int, list[str]]:  # type: ignore[no-untyped-def]
    times, trips = [], 0
    for _ in range(REPEATS):
        keeper.last_block = None
        provider.requests = 0
        t = time.perf_counter()
        results = keeper.tick(Mode.CHECK)
        times.append(time.perf_counter() - t)
        trips = provider.requests
    return statistics.median(times), trips, sorted({r.verdict for r in results})


def main() -> None:
    rows = []
    with Anvil(extra_args=("--gas-limit", "300000000")) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        t0 = time.perf_counter()
        market, cfg, keeper_addr = stack(w3, anvil.url, max(SIZES))
        print(f"setup of {max(SIZES)} vaults: {time.perf_counter() - t0:.1f} s")
        for case in ("in band (hold)", "out of band (plan)"):
            if case.startswith("out"):
                move_market(w3, market, "WETH", 3_000)
            for n in SIZES:
                keeper, provider = counting_keeper(
                    cfg, anvil.url, keeper_addr, [f"v{i}" for i in range(n)]
                )
                median, trips, verdicts = measure(keeper, provider)
                rows.append((case, n, median, trips, ",".join(verdicts)))
                print(
                    f"{case:20s} {n:4d} vaults: {median * 1000:8.1f} ms, {trips} trips, {verdicts}"
                )
    lines = [
        "| case | vaults | tick latency (median of 5) | RPC round trips | verdicts |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [f"| {c} | {n} | {m * 1000:.0f} ms | {t} | {v} |" for c, n, m, t, v in rows]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tick.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
