"""Which node runs a tick's simulations, and how.

Every plan of a tick runs at once, on the snapshot block: `eth_simulateV1` requests to the
network's node in one round trip (through the keeper's failover provider, so a failing endpoint
is left for the next), or, where the node lacks the method, the same requests on a local fork of
it (`keeper.simulate.fork`). Whether a node has the method is learnt from its first answer and
remembered per endpoint: the first request is the probe (`keeper.chain.errors.method_missing`
tells a missing method from a failed request).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.types import RPCEndpoint

from keeper.chain.errors import method_missing
from keeper.chain.rpc import FailoverProvider, failover_of
from keeper.errors import SimulationError
from keeper.models import SimulationReport
from keeper.redact import redact
from keeper.simulate import batches
from keeper.simulate.calls import (
    SIMULATE,
    Refused,
    SimBlock,
    SimJob,
    outcome_of,
    simulate_params,
)
from keeper.simulate.verdict import refused, report

if TYPE_CHECKING:  # the fork (an HTTP server, threads, anvil) loads only when a node needs it
    from keeper.simulate.fork import ForkRun, Hints

log = logging.getLogger("keeper.simulate")
SIM_CHUNK = 16  # plans per request: a request stays well inside a provider's timeout

class Simulator:
    """Runs plans on the snapshot block of the node `w3` reaches (or of `source_url`)."""

    def __init__(self, w3: Web3, *, chain_id: int, source_url: str | None = None) -> None:
        self.chain_id = chain_id
        self._w3 = w3
        self._source_url = source_url
        self._source: Web3 | None = None
        self.without_method: set[str] = set()  # endpoint URLs known to lack eth_simulateV1
        self.last_path = ""  # "eth_simulateV1" or "fork": how the last run went
        self.last_fork: ForkRun | None = None  # the last fork run (what it fetched, and how)
        self.hints: Hints | None = None  # what earlier forks needed beyond the access lists

    def node(self) -> Web3:
        """The keeper's web3, or a provider of its own over `fork_source` (built on first use:
        building a keeper has no side effects)."""
        if self._source_url is None:
            return self._w3
        if self._source is None:
            self._source = Web3(FailoverProvider([self._source_url]))
        return self._source

    def run(self, jobs: list[SimJob], at: SimBlock) -> list[SimulationReport]:
        """Each job's SimulationReport, in order. SimulationError when no node could run them."""
        if not jobs:
            return []
        node = self.node()
        results: list[Any] = [None] * len(jobs)
        if _url(node) not in self.without_method:
            results = self._direct(node, jobs, at)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            forked = self._fork(node, [jobs[i] for i in todo], at)
            for i, r in zip(todo, forked, strict=True):
                results[i] = r
        self.last_path = "fork" if todo else SIMULATE
        return [_report(j, r) for j, r in zip(jobs, results, strict=True)]

    def _fork(self, node: Web3, jobs: list[SimJob], at: SimBlock) -> list[Any]:
        from keeper.simulate.fork import ForkRun, Hints

        self.hints = self.hints or Hints()
        self.last_fork = ForkRun(node, self.chain_id, at, redact(_url(node)), self.hints)
        return self.last_fork.run(jobs)

    def _direct(self, node: Web3, jobs: list[SimJob], at: SimBlock) -> list[Any]:
        """The node's result for each job; None where it cannot run it (the fork will): every
        job when the node lacks the method (remembered), else the ones it answered with an
        error (a node that has the method but fails a request)."""
        reqs = [(RPCEndpoint(SIMULATE), simulate_params(j, at)) for j in jobs]
        answers = batches.send(node, reqs, SIM_CHUNK)
        failed = next((a for a in answers if isinstance(a, batches.ChunkFailed)), None)
        if failed is not None:
            raise SimulationError(
                f"no node could run the simulation ({SIMULATE}): {redact(str(failed))[:300]}. "
                "Fix: check the network's rpc_urls (or fork_source), or wait for the node"
            ) from failed
        url = _url(node)
        errors = [a.get("error", a) for a in answers if "result" not in a]
        if not errors:
            return [a["result"] for a in answers]
        if method_missing(errors[0]):
            self.without_method.add(url)
            log.info("%s has no %s: simulating on a fork of it", redact(url), SIMULATE)
            return [None] * len(jobs)
        log.warning("%s answered %s with %s: simulating those plans on a fork of it",
                    redact(url), SIMULATE, redact(str(errors[0]))[:200])
        return [a.get("result") for a in answers]


def _report(job: SimJob, result: Any) -> SimulationReport:
    if isinstance(result, Refused):
        return refused(job.state, result.message)
    return report(job.plan, job.state, outcome_of(job, result), job.limits)


def _url(w3: Web3) -> str:
    rpc = failover_of(w3)
    if rpc is not None:
        return rpc.current_url()
    return str(getattr(w3.provider, "endpoint_uri", "") or "")
