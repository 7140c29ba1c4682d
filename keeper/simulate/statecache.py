"""The JSON-RPC endpoint a simulation fork forks from: one block's state, fetched in batches.

anvil fetches a fork's state one item at a time and never two at once: each storage slot, and
each account's balance, nonce and code, is a round trip to the node it forks. Between the fork
and the node, this cache on 127.0.0.1 answers what `prefetch` fetched beforehand (in one batch
of parallel chunks) at loopback speed. A miss costs one round trip to the node (an account's
balance, nonce and code come together) and is kept. Requests reach the node through the
keeper's web3 provider, so they follow its RPC failover. Everything is pinned to one block:
the answers are the same from any node that has that block.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any, cast

from web3 import Web3
from web3.exceptions import Web3Exception
from web3.types import RPCEndpoint

from keeper.chain.localrpc import LocalRpcServer
from keeper.errors import KeeperError
from keeper.redact import redact
from keeper.simulate import batches
from keeper.simulate.batches import ChunkFailed, Request

log = logging.getLogger("keeper.simulate")
CHUNK = 500  # state requests per JSON-RPC batch (geth and most providers accept up to 1000)
READY_WAIT_S = 120.0  # how long a fork request waits for the prefetch to finish
BASICS = ("eth_getBalance", "eth_getTransactionCount", "eth_getCode")


class StateCache:
    """A JSON-RPC server for one fork: block `block` of the node behind `upstream`."""

    def __init__(self, upstream: Web3, block: int, chain_id: int) -> None:
        self.upstream = upstream
        self.block = block
        self.tag = hex(block)
        self.chain_id = chain_id
        self.header: dict[str, Any] | None = None
        self.accounts: dict[str, tuple[str, str, str]] = {}  # address -> balance, nonce, code
        self.slots: dict[tuple[str, int], str] = {}
        self.misses = 0  # requests the fork made that went to the node
        self.late_accounts: set[str] = set()  # what the fork needed beyond the prefetch
        self.late_slots: set[tuple[str, int]] = set()
        self.failures: list[str] = []  # what the node failed to answer (URLs redacted)
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._server = LocalRpcServer(self._serve)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> StateCache:
        self._server.start()
        return self

    def close(self) -> None:
        self._ready.set()
        self._server.close()

    def ready(self) -> None:
        """The prefetch is over (done or given up): fork requests stop waiting for it."""
        self._ready.set()

    # ------------------------------------------------------------ fetching from the node

    def batch(self, reqs: Sequence[Request], chunk: int = CHUNK) -> list[Any]:
        """Answers to `reqs` in order (batches.send); a chunk the node failed is recorded and
        its answers are None (the fork fetches those items on demand)."""
        got = batches.send(self.upstream, reqs, chunk)
        for why in dict.fromkeys(str(a) for a in got if isinstance(a, ChunkFailed)):
            self._failed(f"state requests failed: {redact(why)}")
        return [None if isinstance(a, ChunkFailed) else a for a in got]

    def prefetch(self, addresses: Iterable[str], slots: Iterable[tuple[str, int]]) -> int:
        """Fetch these accounts and storage slots at the block (one batch); returns how many
        items were fetched."""
        accts = sorted({a.lower() for a in addresses} - set(self.accounts))
        keys = sorted({(a.lower(), s) for a, s in slots} - set(self.slots))
        reqs = [(RPCEndpoint(m), [Web3.to_checksum_address(a), self.tag]) for a in accts
                for m in BASICS]
        reqs += [(RPCEndpoint("eth_getStorageAt"), [Web3.to_checksum_address(a), hex(s),
                                                     self.tag]) for a, s in keys]
        got = self.batch(reqs)
        for i, a in enumerate(accts):
            basics = [_result(r) for r in got[3 * i : 3 * i + 3]]
            if all(isinstance(b, str) for b in basics):
                self.accounts[a] = cast(tuple[str, str, str], tuple(basics))
        for key, r in zip(keys, got[3 * len(accts) :], strict=True):
            if isinstance(value := _result(r), str):
                self.slots[key] = value
        return len(accts) + len(keys)

    def _failed(self, why: str) -> None:
        with self._lock:
            self.failures.append(why)
        log.warning("simulation fork: %s", why)

    # ------------------------------------------------------------ serving the fork

    def _serve(self, raw: bytes, _agent: str) -> bytes:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        out = [self.answer(b) for b in body] if isinstance(body, list) else self.answer(body)
        return json.dumps(out).encode()

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        method = str(req.get("method"))
        params = list(req.get("params") or [])
        out: dict[str, Any] = {"jsonrpc": "2.0", "id": req.get("id")}
        result = self._local(method, params)
        if result is not None:
            return {**out, "result": result}
        got = self._forward(method, params)
        return {**out, **{k: v for k, v in got.items() if k in ("result", "error")}}

    def _local(self, method: str, params: list[Any]) -> Any:
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "net_version":
            return str(self.chain_id)
        if method == "eth_blockNumber":
            return self.tag
        self._ready.wait(READY_WAIT_S)
        if method == "eth_getBlockByNumber" and params[:2] == [self.tag, False]:
            return self.header
        if method == "eth_gasPrice" and self.header and self.header.get("baseFeePerGas"):
            return self.header["baseFeePerGas"]
        if method in (*BASICS, "eth_getAccountInfo") and params[1:2] == [self.tag]:
            return self._account(method, str(params[0]).lower())
        if method == "eth_getStorageAt" and params[2:3] == [self.tag]:
            return self._slot(str(params[0]).lower(), int(str(params[1]), 16))
        return None

    def _account(self, method: str, address: str) -> Any:
        if address not in self.accounts:
            self._miss()
            self.late_accounts.add(address)
            self.prefetch([address], [])
        basics = self.accounts.get(address)
        if basics is None:
            return None  # the node failed: forward the request for its own error
        balance, nonce, code = basics
        if method == "eth_getAccountInfo":
            return {"balance": balance, "nonce": nonce, "code": code}
        return basics[BASICS.index(method)]

    def _slot(self, address: str, slot: int) -> Any:
        if (address, slot) not in self.slots:
            self._miss()
            self.late_slots.add((address, slot))
            self.prefetch([], [(address, slot)])
        return self.slots.get((address, slot))

    def _miss(self) -> None:
        with self._lock:
            self.misses += 1

    def _forward(self, method: str, params: list[Any]) -> dict[str, Any]:
        self._miss()
        try:
            got = self.upstream.provider.make_request(RPCEndpoint(method), params)
        except (KeeperError, Web3Exception, OSError, ValueError) as err:
            why = f"{method} failed: {_why(err)}"
            self._failed(why)
            return {"error": {"code": -32603, "message": why}}
        return dict(got)


def _result(answer: Any) -> Any:
    return answer.get("result") if isinstance(answer, dict) else None


def _why(err: BaseException) -> str:
    return redact(str(err) if isinstance(err, KeeperError) else f"{type(err).__name__}: {err}")
