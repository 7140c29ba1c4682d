"""Fork simulation latency per rebalance, fork start included. Goal: under 1.5 s."""

from __future__ import annotations

import statistics
import time

from web3 import Web3

from benchmarks._common import RESULTS, counting_keeper, stack
from keeper.app import Mode
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market

REPEATS = 5


def main() -> None:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        market, cfg, keeper_addr = stack(w3, anvil.url, 1)
        move_market(w3, market, "WETH", 3_000)
        keeper, _ = counting_keeper(cfg, anvil.url, keeper_addr)
        check, sim = [], []
        for _ in range(REPEATS):
            keeper.last_block = None
            t = time.perf_counter()
            (r,) = keeper.tick(Mode.CHECK)
            check.append(time.perf_counter() - t)
            keeper.last_block = None
            t = time.perf_counter()
            (r,) = keeper.tick(Mode.SIMULATE)
            sim.append(time.perf_counter() - t)
            assert r.verdict == "simulated", r
    fork = statistics.median(sim) - statistics.median(check)
    lines = [
        "| measure (median of 5) | time |",
        "|---|---:|",
        f"| tick without simulation | {statistics.median(check) * 1000:.0f} ms |",
        f"| tick with fork simulation | {statistics.median(sim) * 1000:.0f} ms |",
        f"| fork simulation alone (fork start, send, read back) | {fork * 1000:.0f} ms |",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fork_sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
