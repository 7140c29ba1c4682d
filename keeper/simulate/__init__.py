"""Simulate stage: run each plan's exact transaction on the snapshot block and judge it.

The keeper's address sends the plan's calldata at its gas limit in the block after the snapshot
(stamped one block time later, the earliest the real transaction can land), and keeperView reads
the vault right after. The outcome (revert reason, gas used, amounts out from the Swapped
events, post-trade weights and collateral ratio) is judged against the plan. Two ways to run it,
one request and one judge (docs/simulation.md):

- `eth_simulateV1` on the network's node: one round trip for every plan of a tick;
- where the node lacks it, the same request on a local anvil fork of the node, its state
  prefetched in batches from the plans' access lists.

A "reject" verdict is a value with reasons; SimulationError means no node could run the plans.
"""

from keeper.simulate.calls import SimBlock, SimJob
from keeper.simulate.simulator import Simulator
from keeper.simulate.verdict import Outcome, SimLimits, distance_bps, judge, realised_cost_e18

__all__ = [
    "Outcome",
    "SimBlock",
    "SimJob",
    "SimLimits",
    "Simulator",
    "distance_bps",
    "judge",
    "realised_cost_e18",
]
