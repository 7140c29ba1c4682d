"""Anvil start plus the whole local market deployment (goal: under 10 s)."""

from __future__ import annotations

import statistics
import time

from web3 import Web3

from benchmarks._common import RESULTS
from keeper.chain.anvil import Anvil
from keeper.localnet.deploy import deploy_market

REPEATS = 3


def once() -> tuple[float, float]:
    t0 = time.perf_counter()
    with Anvil() as anvil:
        t1 = time.perf_counter()
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        deploy_market(w3, w3.eth.accounts[0])
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    runs = [once() for _ in range(REPEATS)]
    start = statistics.median(r[0] for r in runs)
    deploy = statistics.median(r[1] for r in runs)
    lines = [
        "| measure (median of 3) | time |",
        "|---|---:|",
        f"| anvil start (until it answers) | {start * 1000:.0f} ms |",
        f"| deploy the local market (tokens, feeds, Uniswap v3 + 6 pools with liquidity, "
        f"lending pool, Multicall3) | {deploy:.2f} s |",
        f"| total | {start + deploy:.2f} s |",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "localnet.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
