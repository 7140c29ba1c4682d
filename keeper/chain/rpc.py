"""RPC resilience: several endpoints per network, failover, retry with backoff, lag detection.

`FailoverProvider` is a web3 provider over N HTTP endpoints:

- a connection error, a timeout, or an HTTP 429/5xx marks the endpoint down for a cooldown and
  the same request goes to the next endpoint; after a full round it backs off
  (`backoff_s * 2**round`, jittered) and tries again, `rounds` times, then raises
  RpcUnavailable (every endpoint failed). Down endpoints are still tried last, so the provider
  recovers by itself when they return.
- a retried `eth_sendRawTransaction` (the first try may have propagated) that gets
  "already known" or "nonce too low" is success when the hash is ours: the node knows our
  exact signed bytes.
- an endpoint whose head is behind the best head seen by more than `lag_blocks`, or that served
  a snapshot older than the last one (`mark_lagging`), is tried after the others. The
  runtime compares every endpoint's head (and chain id) before each tick (`check_health`), so a
  steady lag is caught at once; an endpoint on another chain is dropped, mid-run as at start.
- at start (`connect_urls`) the probe is retried with the same backoff: a transient fault does
  not stop the keeper.

Endpoint URLs may carry credentials; they appear in logs and errors only through `redact()`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from keeper.errors import RpcUnavailable, WrongChain
from keeper.redact import RedactingFilter, redact

log = logging.getLogger("keeper.rpc")
# web3 logs every request's full URI at DEBUG: redact those records at the source.
for _name in ("web3.providers.HTTPProvider", "web3._utils.http_session_manager.HTTPSessionManager"):
    logging.getLogger(_name).addFilter(RedactingFilter())

_RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.HTTPError, OSError)
_OURS_IF_RETRIED = ("already known", "known transaction", "already imported", "nonce too low")


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcSettings:
    timeout_s: float = 10.0  # per HTTP request
    rounds: int = 3  # full passes over the endpoints before RpcUnavailable
    backoff_s: float = 0.25  # first pause between rounds; doubles each round
    max_backoff_s: float = 4.0
    jitter_frac: float = 0.2  # +-20%, so many keepers do not retry in step
    cooldown_s: float = 30.0  # a failed endpoint is tried last for this long
    lag_blocks: int = 3  # ~3 blocks behind the best head = lagging
    health_interval_s: float = 60.0  # compare every endpoint's head this often (0: never)


@dataclass(slots=True)
class Endpoint:
    url: str
    provider: HTTPProvider
    down_until: float = 0.0
    failures: int = 0
    lagging: str | None = None  # why it is considered behind, or None
    head: int | None = None
    last_error: str = ""

    @property
    def name(self) -> str:
        return redact(self.url)


@dataclass(slots=True)
class RpcStats:
    failovers: int = 0
    retries: int = 0
    send_reconciled: int = 0
    lagging_marked: int = 0
    errors: list[str] = field(default_factory=list)


class FailoverProvider(JSONBaseProvider):
    """A web3 provider over several HTTP endpoints (see the module docstring)."""

    def __init__(
        self,
        urls: list[str],
        settings: RpcSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if not urls:
            raise RpcUnavailable("no RPC URL configured")
        self.settings = settings or RpcSettings()
        self.endpoints = [Endpoint(url=u, provider=self._http(u)) for u in urls]
        self.best_head = 0
        self.current: Endpoint | None = None
        self.stats = RpcStats()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._checked = 0.0  # monotonic time of the last check_health
        self.chain_id: int | None = None  # endpoints answering another chain id are dropped
        self.dropped: list[str] = []  # why each dropped endpoint went (URLs redacted)

    def _http(self, url: str) -> HTTPProvider:
        # our own retry loop replaces web3's (which would retry one endpoint only)
        return HTTPProvider(
            url,
            request_kwargs={"timeout": self.settings.timeout_s},
            exception_retry_configuration=None,
        )

    # ------------------------------------------------------------ web3 provider API

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self._maybe_check_health()
        response: RPCResponse = self._call(
            method, params, lambda p: p.make_request(method, params)
        )
        return response

    def make_batch_request(self, requests_: Any) -> Any:
        return self._call(RPCEndpoint("batch"), None, lambda p: p.make_batch_request(requests_))

    def is_connected(self, show_traceback: bool = False) -> bool:
        return any(e.provider.is_connected() for e in self.endpoints)

    # ------------------------------------------------------------ health

    def current_url(self) -> str:
        """The URL that answered last (for forks); the first endpoint before any request."""
        return (self.current or self._order()[0]).url

    def mark_lagging(self, why: str) -> None:
        """The endpoint that answered last served an old block (read stage): try it last."""
        ep = self.current
        if ep is not None and len(self.endpoints) > 1:
            ep.lagging = why
            self.stats.lagging_marked += 1
            log.warning("RPC %s is lagging: %s; using the others first", ep.name, why)
            self.current = None

    def check_health(self, chain_id: int | None = None) -> list[str]:
        """Ask every endpoint for its head (and chain id): mark lagging ones, drop ones on the
        wrong chain (never the last one). Returns the problems found (URLs redacted)."""
        self._checked = time.monotonic()
        chain_id = self.chain_id if chain_id is None else chain_id
        problems = []
        for ep in list(self.endpoints):
            why = self._probe(ep, chain_id)
            if why:
                problems.append(f"{ep.name}: {why}")
        self._mark_behind()
        return problems

    def lag_of(self, ep: Endpoint) -> int | None:
        return None if ep.head is None else max(self.best_head - ep.head, 0)

    def _maybe_check_health(self) -> None:
        """Every health_interval_s, ask each endpoint for its head so a lagging one is tried
        last even when it still answers (one eth_blockNumber per endpoint)."""
        every = self.settings.health_interval_s
        if every <= 0 or len(self.endpoints) < 2 or time.monotonic() - self._checked < every:
            return
        self.check_health(self.chain_id)

    def _probe(self, ep: Endpoint, chain_id: int | None) -> str:
        """The endpoint's chain id and head, in one round trip (a batch)."""
        try:
            got = ep.provider.make_batch_request(
                [(RPCEndpoint("eth_chainId"), []), (RPCEndpoint("eth_blockNumber"), [])]
            )
            if not isinstance(got, list) or len(got) != 2:
                raise ValueError("no batch answer")
            chain, head = (int(r["result"], 16) for r in got)
            if chain_id is not None and chain != chain_id:
                return self._drop(ep, f"chain id {chain}, expected {chain_id}")
            ep.head = head
        except (*_RETRYABLE, KeyError, ValueError, TypeError) as err:
            self._mark_down(ep, err)
            return _describe(err)
        self._mark_up(ep)
        self.best_head = max(self.best_head, ep.head)
        return ""

    def _drop(self, ep: Endpoint, why: str) -> str:
        """An endpoint on another chain is removed (the last one stays, so every call fails
        with the chain check's message instead of 'no endpoint')."""
        if len(self.endpoints) > 1:
            self.endpoints.remove(ep)
            self.dropped.append(f"{ep.name}: {why}")
            log.error("ALERT RPC %s dropped: %s", ep.name, why)
            if self.current is ep:
                self.current = None
        ep.lagging = why
        return why

    def prefer_receipt_holder(self, tx_hash: str) -> bool:
        """Find an endpoint that has the receipt of `tx_hash`; the ones that do not are tried
        last until a health check finds their head caught up. False if none has it."""
        missing: list[Endpoint] = []
        for ep in self._order():
            try:
                got = ep.provider.make_request(
                    RPCEndpoint("eth_getTransactionReceipt"), [tx_hash]
                )
            except _RETRYABLE:
                continue
            if isinstance(got, dict) and got.get("result"):
                for behind in missing:
                    behind.lagging = f"head behind: no receipt of {tx_hash}"
                    log.warning("RPC %s lags: no receipt of %s", behind.name, tx_hash)
                self.current = None
                return True
            missing.append(ep)
        return False

    def _mark_behind(self) -> None:
        for ep in self.endpoints:
            if ep.head is None:
                continue
            if ep.head + self.settings.lag_blocks < self.best_head:
                ep.lagging = f"head {ep.head} behind best {self.best_head}"
            elif ep.lagging and ep.lagging.startswith("head "):
                ep.lagging = None

    # ------------------------------------------------------------ the retry loop

    def _order(self) -> list[Endpoint]:
        now = time.monotonic()
        up = [e for e in self.endpoints if e.down_until <= now and not e.lagging]
        lagging = [e for e in self.endpoints if e.down_until <= now and e.lagging]
        down = sorted((e for e in self.endpoints if e.down_until > now), key=lambda e: e.down_until)
        return up + lagging + down

    def _call(self, method: RPCEndpoint, params: Any, fn: Callable[[HTTPProvider], Any]) -> Any:
        s = self.settings
        unsure = False  # an earlier try of this request may have reached a node
        errors: list[str] = []
        for rnd in range(s.rounds):
            for ep in self._order():
                try:
                    resp = fn(ep.provider)
                except _RETRYABLE as err:
                    unsure = unsure or not isinstance(err, requests.ConnectionError)
                    errors.append(f"{ep.name}: {_describe(err)}")
                    self._mark_down(ep, err)
                    continue
                if unsure and method == "eth_sendRawTransaction":
                    resp = self._reconcile_send(ep, params, resp)
                self._note_head(ep, method, resp)
                self._mark_up(ep)
                return resp
            if rnd + 1 < s.rounds:
                self.stats.retries += 1
                self._sleep(self._backoff(rnd))
        self.stats.errors.append(errors[-1] if errors else "")
        raise RpcUnavailable(
            f"every RPC endpoint failed for {method} after {s.rounds} rounds: "
            + "; ".join(errors[-len(self.endpoints) :]),
            key="rpc_urls",
        )

    def _backoff(self, rnd: int) -> float:
        s = self.settings
        base = min(s.backoff_s * 2**rnd, s.max_backoff_s)
        return float(base * (1 + random.uniform(-s.jitter_frac, s.jitter_frac)))

    def _mark_down(self, ep: Endpoint, err: BaseException) -> None:
        with self._lock:
            ep.failures += 1
            ep.last_error = _describe(err)
            ep.down_until = time.monotonic() + self.settings.cooldown_s
            if self.current is ep:
                self.current = None
            self.stats.failovers += 1
        log.warning("RPC %s failed (%s); failing over", ep.name, ep.last_error)

    def _mark_up(self, ep: Endpoint) -> None:
        ep.down_until = 0.0
        ep.failures = 0
        self.current = ep

    def _note_head(self, ep: Endpoint, method: str, resp: Any) -> None:
        if method != "eth_blockNumber" or not isinstance(resp, dict) or "result" not in resp:
            return
        ep.head = int(resp["result"], 16)
        self.best_head = max(self.best_head, ep.head)
        self._mark_behind()

    def _reconcile_send(self, ep: Endpoint, params: Any, resp: Any) -> Any:
        """The retry of a send that may have propagated: 'already known' / 'nonce too low'
        for our own bytes means the first try got through."""
        error = resp.get("error") if isinstance(resp, dict) else None
        if not error:
            return resp
        text = str(error.get("message", "")).lower()
        if not any(f in text for f in _OURS_IF_RETRIED):
            return resp
        tx_hash = "0x" + keccak(hexstr=params[0]).hex()
        if "nonce too low" in text and not self._known(ep, tx_hash):
            return resp  # the nonce went to another tx: not ours
        self.stats.send_reconciled += 1
        log.info("send retry answered %r for our tx %s: treated as sent", text, tx_hash)
        return {"jsonrpc": "2.0", "id": resp.get("id", 0), "result": tx_hash}

    @staticmethod
    def _known(ep: Endpoint, tx_hash: str) -> bool:
        try:
            got = ep.provider.make_request(RPCEndpoint("eth_getTransactionByHash"), [tx_hash])
        except _RETRYABLE:
            return False
        return bool(got.get("result"))


def _describe(err: BaseException) -> str:
    """The error's class (and HTTP status): never its text, which quotes the URL path where
    providers put API keys (`url: /v2/<key>`)."""
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code}"
    return type(err).__name__


def connect_urls(
    urls: list[str],
    chain_id: int,
    settings: RpcSettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Web3:
    """A Web3 over every URL; the endpoints that answer with another chain id are dropped.
    The start-up probe is retried `rounds` times with backoff; RpcUnavailable when no endpoint
    answers, WrongChain when every answering endpoint is on another chain."""
    provider = FailoverProvider(urls, settings, sleep=sleep)
    provider.chain_id = chain_id
    problems: list[str] = []
    for rnd in range(provider.settings.rounds):
        problems = provider.check_health(chain_id)
        if any(e.head is not None and not _wrong_chain(e) for e in provider.endpoints):
            return Web3(provider)
        if all(_wrong_chain(e) for e in provider.endpoints):
            break
        if rnd + 1 < provider.settings.rounds:
            sleep(provider._backoff(rnd))
    wrong = [p for p in problems + provider.dropped if "chain id" in p]
    if wrong:
        raise WrongChain("every RPC endpoint is on another chain: " + "; ".join(wrong))
    raise RpcUnavailable("no RPC endpoint is usable: " + "; ".join(problems))


def _wrong_chain(ep: Endpoint) -> bool:
    return bool(ep.lagging and ep.lagging.startswith("chain id"))


def receipt_from_any(w3: Web3, hashes: list[str]) -> Any | None:
    """The first receipt of `hashes` that any endpoint has (a lagging node hides receipts);
    None on a plain provider or when no endpoint has one."""
    rpc = failover_of(w3)
    if rpc is None or len(rpc.endpoints) < 2:
        return None
    for tx_hash in hashes:
        if rpc.prefer_receipt_holder(tx_hash):
            try:
                return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
    return None


def failover_of(w3: Web3) -> FailoverProvider | None:
    provider = w3.provider
    return provider if isinstance(provider, FailoverProvider) else None
