"""A JSON-RPC proxy on 127.0.0.1 that adds a fixed latency to every HTTP request and counts the
requests by client, to measure the keeper against a node that is a network hop away.

Each HTTP request (a single JSON-RPC request or a whole batch) waits `delay_s` before it goes
to the upstream node, as a round trip to a provider tens of milliseconds away would. Requests
are served concurrently (a thread each) over keep-alive connections, so requests that a client
sends in parallel overlap their latency, as they would over a real network.

Clients are told apart by their User-Agent: web3.py (the keeper), anvil's fork backend
(foundry), anything else. `rounds` counts round trips in sequence: a request that arrives while
none is in flight starts a new round, one that overlaps another joins it. `reject` names methods
the proxy answers with "method not found", as a provider without them would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import requests

from keeper.chain.localrpc import LocalRpcServer


def client_of(user_agent: str) -> str:
    ua = user_agent.lower()
    if "web3.py" in ua:
        return "keeper"
    if "reqwest" in ua or "alloy" in ua or "foundry" in ua or "anvil" in ua or not ua:
        return "fork"
    return "other"


class LatencyProxy:
    """Forward JSON-RPC over HTTP to `upstream`, `delay_s` late; count requests per client."""

    def __init__(
        self, upstream: str, delay_s: float = 0.0, reject: frozenset[str] = frozenset()
    ) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.reject = reject
        self.rounds = 0
        self._inflight = 0
        self.requests: Counter[str] = Counter()  # HTTP requests (round trips) per client
        self.methods: dict[str, Counter[str]] = {}  # JSON-RPC methods per client
        self.agents: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.server = LocalRpcServer(self._serve).start()

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.methods.clear()
            self.agents.clear()
            self.rounds = 0

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, agent: str, body: Any) -> None:
        calls = body if isinstance(body, list) else [body]
        client = client_of(agent)
        with self._lock:
            if self._inflight == 0:
                self.rounds += 1
            self._inflight += 1
            self.requests[client] += 1
            self.agents[agent] += 1
            got = self.methods.setdefault(client, Counter())
            got.update(str(c.get("method", "?")) for c in calls if isinstance(c, dict))

    def _done(self) -> None:
        with self._lock:
            self._inflight -= 1

    def _answer(self, raw: bytes, body: Any) -> bytes:
        """The upstream's answer, with the rejected methods answered here."""
        calls = body if isinstance(body, list) else [body]
        if not any(isinstance(c, dict) and c.get("method") in self.reject for c in calls):
            return self._forward(raw)
        out = [self._one(c) for c in calls]
        return json.dumps(out if isinstance(body, list) else out[0]).encode()

    def _one(self, call: Any) -> Any:
        if isinstance(call, dict) and call.get("method") in self.reject:
            message = f"the method {call['method']} does not exist/is not available"
            error = {"code": -32601, "message": message}
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": error}
        return json.loads(self._forward(json.dumps(call).encode()))

    def _forward(self, raw: bytes) -> bytes:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        resp = session.post(
            self.upstream, data=raw, headers={"Content-Type": "application/json"}, timeout=120
        )
        return resp.content

    def _serve(self, raw: bytes, agent: str) -> bytes | None:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        self._count(agent, body)
        try:
            if self.delay_s > 0:
                time.sleep(self.delay_s)
            return self._answer(raw, body)
        except requests.RequestException:
            return None
        finally:
            self._done()
