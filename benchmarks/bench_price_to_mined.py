"""Time from a price move to the mined rebalance, on anvil with 12 s blocks.

Goal: the rebalance lands within one block after the tick that sees the move. The market move
is made with automine on; then anvil switches to 12 s interval mining and the keeper (the real
sender, keystore account, fork simulation) ticks every second.
"""

from __future__ import annotations

import time

from web3 import Web3

from benchmarks._common import RESULTS, stack
from keeper.app import Mode
from keeper.chain.anvil import Anvil
from keeper.config import load_config
from keeper.localnet.market import move_market
from keeper.wiring import build_keeper

BLOCK_S = 12


def main() -> None:
    with Anvil() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        market, cfg_path, _ = stack(w3, anvil.url, 1, block_time_s=BLOCK_S)
        keeper = build_keeper(load_config(cfg_path), can_send=True)
        move_market(w3, market, "WETH", 3_000)
        move_block = w3.eth.block_number
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [BLOCK_S])  # type: ignore[arg-type]
        t0 = time.perf_counter()
        seen_block, result = None, None
        while result is None and time.perf_counter() - t0 < 10 * BLOCK_S:
            (r,) = keeper.tick(Mode.SEND)
            seen_block = seen_block or r.block
            if r.verdict in ("sent", "failed", "rejected", "error"):
                result = r
            else:
                time.sleep(1)
        wall = time.perf_counter() - t0
    assert result is not None and result.verdict == "sent", result
    receipt_block = keeper.deps.ledger.get_tx(1).receipt_block
    lines = [
        "| measure | value |",
        "|---|---:|",
        f"| block of the price move | {move_block} |",
        f"| block the keeper's tick saw | {seen_block} |",
        f"| block the rebalance was mined in | {receipt_block} |",
        f"| blocks after the tick that saw the move | {receipt_block - seen_block} |",
        f"| wall time, move to mined (12 s blocks) | {wall:.1f} s |",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "price_to_mined.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
