"""Prometheus metrics and structured logging for the keeper."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from keeper.redact import redact


class Metrics:
    """Counters and histograms for one keeper process (own registry: tests make many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; secrets redacted; extra fields (vault, block, ...) kept."""

    FIELDS = ("vault", "block", "decision", "tx", "cost_usd", "reason", "network")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
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
