"""Simulation latency per rebalance on a local anvil, both paths: eth_simulateV1 on the node,
and the fork fallback (the node refuses eth_simulateV1 through a proxy; fork start included).
Goal: under 1.5 s. The same against a remote node: bench_remote_sim.py.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from web3 import Web3

from benchmarks._common import RESULTS, counting_keeper, stack
from benchmarks.latency_proxy import LatencyProxy
from keeper.app import Keeper, Mode
from keeper.chain.anvil import Anvil
from keeper.localnet.market import move_market

REPEATS = 5


def timed(keeper: Keeper, mode: Mode) -> float:
    keeper.last_block = None
    t = time.perf_counter()
    (r,) = keeper.tick(mode)
    assert r.verdict == ("planned" if mode == Mode.CHECK else "simulated"), r
    return time.perf_counter() - t


def medians(keeper: Keeper) -> tuple[float, float, float]:
    """Median tick without and with simulation, and of the simulation alone."""
    alone: list[float] = []
    run = keeper.simulator.run

    def clocked(*args: Any) -> Any:
        t = time.perf_counter()
        try:
            return run(*args)
        finally:
            alone.append(time.perf_counter() - t)

    keeper.simulator.run = clocked  # type: ignore[method-assign]
    check = [timed(keeper, Mode.CHECK) for _ in range(REPEATS)]
    sim = [timed(keeper, Mode.SIMULATE) for _ in range(REPEATS)]
    return statistics.median(check), statistics.median(sim), statistics.median(alone)


def main() -> None:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        refusing = LatencyProxy(anvil.url, reject=frozenset({"eth_simulateV1"}))
        market, cfg, keeper_addr = stack(w3, anvil.url, 1)
        move_market(w3, market, "WETH", 3_000)
        direct, _ = counting_keeper(cfg, anvil.url, keeper_addr)
        check, sim, sim_alone = medians(direct)
        assert direct.simulator.last_path == "eth_simulateV1"
        forking, _ = counting_keeper(cfg, refusing.url, keeper_addr)
        _, fork, fork_alone = medians(forking)
        assert forking.simulator.last_path == "fork"
        refusing.close()
    lines = [
        "| measure (median of 5, local anvil) | time |",
        "|---|---:|",
        f"| tick without simulation (read, decide, plan) | {check * 1000:.0f} ms |",
        f"| tick with simulation, eth_simulateV1 | {sim * 1000:.0f} ms |",
        f"| simulation alone, eth_simulateV1 | {sim_alone * 1000:.0f} ms |",
        f"| tick with simulation, fork fallback | {fork * 1000:.0f} ms |",
        f"| simulation alone, fork fallback (fork start, prefetch, run) | "
        f"{fork_alone * 1000:.0f} ms |",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fork_sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
