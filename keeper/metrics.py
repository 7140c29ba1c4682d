"""Prometheus metrics and structured logging for the keeper."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from keeper.redact import redact


class Metrics:
    """Counters and histograms for one keeper process (own registry: tests make many).
    The alerting rules in docs/alerts.yml and the dashboard in docs/ read these names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.names: dict[str, str] = {}  # vault address (lower case) -> configured name
        r = self.registry
        self.tick_seconds = Histogram(
            "keeper_tick_seconds", "tick duration", ["network"], registry=r
        )
        self.decisions = Counter(
            "keeper_decisions_total", "decisions", ["vault", "action"], registry=r
        )
        self.sends = Counter("keeper_sends_total", "transactions sent", ["vault"], registry=r)
        self.replacements = Counter(
            "keeper_replacements_total", "replacements", ["vault"], registry=r
        )
        self.failures = Counter(
            "keeper_failures_total", "failed ticks", ["vault", "kind"], registry=r
        )
        self.gas_spent = Counter(
            "keeper_gas_spent_wei_total", "gas fees paid", ["vault"], registry=r
        )
        self.deviation = Gauge(
            "keeper_band_deviation_bps", "max |weight - target|", ["vault"], registry=r
        )
        self._state_metrics(r)

    def _state_metrics(self, r: CollectorRegistry) -> None:
        self.fee_cap = Counter(
            "keeper_fee_cap_reached_total", "gas ceiling reached: bumping stopped", ["vault"],
            registry=r,
        )
        self.lease_lost = Counter(
            "keeper_lease_lost_total", "epoch leases lost before or during a send", ["vault"],
            registry=r,
        )
        self.pending_age_blocks = Gauge(
            "keeper_pending_tx_age_blocks", "blocks since the open tx was first sent", ["vault"],
            registry=r,
        )
        self.halted = Gauge(
            "keeper_vault_halted", "1 while a vault waits for a human (reason in the log)",
            ["vault"], registry=r,
        )
        self.failures_in_a_row = Gauge(
            "keeper_failures_in_a_row", "consecutive failed ticks", ["vault"], registry=r
        )
        self.backoff = Gauge(
            "keeper_backoff_seconds", "current pause between ticks after failures", ["vault"],
            registry=r,
        )
        self.feed_problem = Gauge(
            "keeper_feed_problem", "1 while a feed is stale or out of bounds", ["vault"],
            registry=r,
        )
        self.last_tick = Gauge(
            "keeper_last_tick_timestamp_seconds", "wall time of the last tick", ["vault"],
            registry=r,
        )
        self.rpc_lag = Gauge(
            "keeper_rpc_lag_blocks", "blocks an endpoint is behind the best head", ["endpoint"],
            registry=r,
        )
        self.rpc_up = Gauge(
            "keeper_rpc_up", "1 when an endpoint answered its last health check", ["endpoint"],
            registry=r,
        )

    def label(self, vault: str | None) -> str:
        if vault is None:
            return "-"
        return self.names.get(vault.lower(), vault)

    def count(self, what: str, vault: str | None) -> None:
        """Count a sender event: replacement, fee_cap or lease_lost."""
        counter = {
            "replacement": self.replacements,
            "fee_cap": self.fee_cap,
            "lease_lost": self.lease_lost,
        }[what]
        counter.labels(self.label(vault)).inc()

    def pending_age(self, vault: str | None, blocks: int) -> None:
        self.pending_age_blocks.labels(self.label(vault)).set(blocks)

    def serve(self, port: int) -> Any:
        """Serve /metrics on `port` (0: a free one); returns the server (`.server_port`,
        `.shutdown()`)."""
        server, _thread = start_http_server(port, registry=self.registry)
        return server


class JsonFormatter(logging.Formatter):
    """One JSON object per line; secrets redacted; extra fields (vault, block, ...) kept."""

    FIELDS = ("vault", "block", "decision", "tx", "cost_usd", "reason", "network")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for f in self.FIELDS:
            if hasattr(record, f):
                out[f] = redact(str(getattr(record, f)))
        return json.dumps(out)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """One handler on the `keeper` logger (idempotent); records still propagate to the root."""
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("keeper")
    root.handlers[:] = [handler]
    root.setLevel(level)
