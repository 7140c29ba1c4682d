"""The fallback where the node lacks eth_simulateV1: a local anvil fork of the snapshot block,
prefetched, that runs the same eth_simulateV1 requests.

The round trips it costs the node, in sequence:

1. one batch: every plan's `eth_createAccessList` (the plan's transaction, and keeperView) and
   the block header;
2. one batch (in parallel chunks): the balance, nonce and code of every account those lists
   name (and the keeper's), and every storage slot they name;
3. one round trip per item the fork needs beyond that (few: the lists name what the calls
   touch at the snapshot block). Those items are remembered and prefetched with step 2 the
   next time.

anvil starts meanwhile, with no dev accounts (it would fetch ten accounts it never uses) and no
rate limit, forking the StateCache rather than the node. The requests then run on the fork in
one local batch: nothing is mined, so nothing is polled for. Where the node has no
`eth_createAccessList` (Hardhat), step 2 fetches the accounts the plans name and what earlier
forks needed; the rest comes one item at a time, as an unaided fork would fetch it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from web3 import Web3
from web3.types import RPCEndpoint

from keeper.chain.anvil import Anvil
from keeper.errors import KeeperError, SimulationError, ToolchainError
from keeper.redact import redact
from keeper.simulate.calls import (
    SIMULATE,
    SimBlock,
    SimJob,
    refusal,
    simulate_params,
    tx_of,
    view_of,
)
from keeper.simulate.statecache import StateCache

log = logging.getLogger("keeper.simulate")
FORK_ARGS = (
    "--accounts", "0",  # no dev accounts: ten account fetches the simulation never uses
    "--no-rate-limit",  # anvil otherwise paces its fetches for a remote provider's quota
    "--no-storage-caching",
    "--retries", "1",  # the cache already retried over every endpoint
    "--timeout", "120000",  # ms; a miss may wait for the provider's failover rounds
)
FORK_TIMEOUT_S = 120.0
LIST_CHUNK = 32  # access lists per request: each runs a transaction on the node
MAX_HINTS = 50_000  # slots remembered from earlier forks (a few MB); past it, start afresh
NODE_FIX = (
    "Fix: check that the node is up and keeps this block's state (an archive node, or a full "
    "node within its recent blocks), or point fork_source at one that does"
)


@dataclass(slots=True)
class Hints:
    """Accounts and slots earlier forks needed beyond their access lists (all of them, on a node
    without eth_createAccessList): prefetched too, in the same batch."""

    accounts: set[str] = field(default_factory=set)
    slots: set[tuple[str, int]] = field(default_factory=set)

    def learn(self, cache: StateCache) -> None:
        if len(self.slots) + len(cache.late_slots) > MAX_HINTS:
            self.accounts.clear()
            self.slots.clear()
        self.accounts |= cache.late_accounts
        self.slots |= cache.late_slots


class ForkRun:
    """Run jobs on a prefetched fork of `at.number` of the node behind `upstream`."""

    def __init__(
        self, upstream: Web3, chain_id: int, at: SimBlock, node: str, hints: Hints | None = None
    ) -> None:
        self.cache = StateCache(upstream, at.number, chain_id)
        self.at = at
        self.node = node  # the node's redacted URL, for messages
        self.hints = hints or Hints()
        self.prefetched = 0

    def run(self, jobs: list[SimJob]) -> list[Any]:
        """eth_simulateV1's result for each job, from the fork, or Refused where the fork would
        not run that job's transaction."""
        self.cache.start()
        loader = threading.Thread(target=self._prefetch, args=(jobs,), daemon=True)
        loader.start()
        try:
            anvil = self._start_anvil()
            try:
                loader.join()
                return self._simulate(anvil.url, jobs)
            finally:
                anvil.stop()
        finally:
            self.cache.ready()
            loader.join()
            self.cache.close()
            self.hints.learn(self.cache)
            log.info(
                "simulation fork of block %d: %d items prefetched, %d fetched on demand",
                self.at.number, self.prefetched, self.cache.misses,
            )

    def _start_anvil(self) -> Anvil:
        fork = Anvil(fork_url=self.cache.url, fork_block=self.at.number, extra_args=FORK_ARGS)
        try:
            return fork.start()
        except ToolchainError as err:
            raise self._failed(f"anvil could not start: {err}") from err

    def _prefetch(self, jobs: list[SimJob]) -> None:
        try:
            addresses, slots = self._access_lists(jobs)
            addresses |= self.hints.accounts
            slots |= self.hints.slots
            self.prefetched = self.cache.prefetch(addresses, slots)
        except (KeeperError, OSError, ValueError, KeyError, TypeError) as err:
            log.warning("simulation fork: prefetch failed (%s); fetching on demand", err)
        finally:
            self.cache.ready()

    def _access_lists(self, jobs: list[SimJob]) -> tuple[set[str], set[tuple[str, int]]]:
        """What the plans touch at the snapshot block, and the block header (one batch)."""
        tag = self.cache.tag
        reqs = [(RPCEndpoint("eth_getBlockByNumber"), [tag, False])]
        for job in jobs:
            reqs += [
                (RPCEndpoint("eth_createAccessList"), [tx_of(job, self.at), tag]),
                (RPCEndpoint("eth_createAccessList"), [view_of(job, self.at), tag]),
            ]
        got = self.cache.batch(reqs, chunk=LIST_CHUNK)
        header = _result(got[0])
        self.cache.header = header if isinstance(header, dict) else None
        addresses = {self.at.keeper} | {job.plan.vault for job in jobs}
        addresses |= {a.token for job in jobs for a in job.state.assets}
        addresses |= {a.feed.feed for job in jobs for a in job.state.assets}
        if self.cache.header and self.cache.header.get("miner"):
            addresses.add(str(self.cache.header["miner"]))
        slots: set[tuple[str, int]] = set()
        for answer in got[1:]:
            _add_list(_result(answer), addresses, slots)
        return addresses, slots

    def _simulate(self, url: str, jobs: list[SimJob]) -> list[Any]:
        body = [
            {"jsonrpc": "2.0", "id": i, "method": SIMULATE, "params": simulate_params(j, self.at)}
            for i, j in enumerate(jobs)
        ]
        try:
            got = requests.post(url, json=body, timeout=FORK_TIMEOUT_S).json()
        except (requests.RequestException, ValueError) as err:
            why = f"the fork did not answer ({type(err).__name__}). {NODE_FIX}"
            raise self._failed(why) from err
        answers = sorted(got, key=lambda a: a.get("id", 0)) if isinstance(got, list) else [got]
        if len(answers) != len(jobs) or (
            self.cache.failures and any("result" not in a for a in answers)
        ):  # the fork failed for want of the node's state, not for the plans
            error = next((a.get("error") for a in answers if "result" not in a), got)
            raise self._failed(f"the fork answered: {_message(error)}")
        return [a["result"] if "result" in a else refusal(a.get("error")) for a in answers]

    def _failed(self, what: str) -> SimulationError:
        """One line naming the node (redacted) and what it failed to answer, rather than the
        fork's transport text; `what` (with its own fix) when the node answered everything."""
        node_said = "; ".join(dict.fromkeys(self.cache.failures))
        if node_said:
            what = f"the node failed: {node_said}. {NODE_FIX}"
        line = " ".join(redact(what).split())
        return SimulationError(
            f"simulation fork of block {self.at.number} from {self.node}: {line[:400]}"
        )


def _add_list(result: Any, addresses: set[str], slots: set[tuple[str, int]]) -> None:
    if not isinstance(result, dict):
        return  # no list: the node lacks the method, or the call reverts there
    for entry in result.get("accessList") or []:
        address = str(entry.get("address"))
        addresses.add(address)
        slots.update((address.lower(), int(k, 16)) for k in entry.get("storageKeys") or [])


def _result(answer: Any) -> Any:
    return answer.get("result") if isinstance(answer, dict) else None


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error).splitlines()[0]
    return str(error)
