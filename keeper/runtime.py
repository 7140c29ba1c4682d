"""APScheduler runtime: one job per vault, a persistent job store, no overlapping runs, and a
clean shutdown on SIGINT/SIGTERM that lets the tick in flight finish (and be recorded) first.

Before each tick it compares every RPC endpoint's head and chain id (a lagging node is tried
last, one on another chain dropped) and resolves open transactions that no live keeper drives.
After N failed ticks in a row a vault backs off (the pause doubles up to a cap) with one ALERT
log line and the `keeper_backoff_seconds` gauge; it never stops for good on a transient fault,
and resumes by itself when the fault heals. Only a Halt (what a human must fix: no gas money,
the keeper role revoked) stops a vault.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from keeper.app import Keeper, Mode
from keeper.chain.rpc import failover_of
from keeper.config import KeeperConfig, ScheduleConfig
from keeper.errors import EpochTaken, Halt, KeeperError
from keeper.models import TickResult

log = logging.getLogger("keeper.runtime")
MAX_FAILURES_IN_A_ROW = 5  # then back off: the pause doubles per failure up to the cap
BACKOFF_CAP_S = 60.0  # a healed fault is noticed within a minute
# Jobs are stored by reference and find their Keeper here (a job store cannot pickle a Keeper).
_KEEPERS: dict[str, Runtime] = {}


def release_leases_job(runtime_id: str) -> None:
    """The scheduled lease janitor: frees leases a dead keeper left without a transaction, so
    another keeper takes the epoch as soon as the lease expires (not when it next acts)."""
    rt = _KEEPERS.get(runtime_id)
    if rt is None or rt.stop_event.is_set():
        return
    try:
        freed = rt.keeper.deps.ledger.release_orphaned_leases()
    except KeeperError as err:
        log.warning("lease janitor: %s", err)
        return
    if freed:
        log.warning("freed %d lease(s) left by a keeper that is gone", freed)


def run_vault_job(runtime_id: str, vault: str) -> None:
    """The scheduled callable: one tick for one vault (module-level so the job store can
    persist a reference to it)."""
    rt = _KEEPERS.get(runtime_id)
    if rt is not None:
        rt.run_once(vault)


@dataclass
class Runtime:
    cfg: KeeperConfig
    keeper: Keeper
    mode: Mode = Mode.SEND
    on_result: Callable[[TickResult], None] | None = None
    runtime_id: str = "default"
    interval_override_s: float | None = None  # the demo ticks faster than the config says
    failures: dict[str, int] = field(default_factory=dict)
    halted: dict[str, str] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)  # backing off until (clock)
    stop_event: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.monotonic
    backoff_cap_s: float | None = None  # default: 8 ticks, at most BACKOFF_CAP_S

    def __post_init__(self) -> None:
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{self._jobs_path()}")},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        )
        _KEEPERS[self.runtime_id] = self

    def _jobs_path(self) -> Path:
        path = self.cfg.ledger.path.parent / "jobs.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def schedule(self) -> None:
        for v in self.cfg.vaults:
            sched = self.cfg.schedule_for(v) or ScheduleConfig(interval_s=60)
            trigger = (
                IntervalTrigger(seconds=self.interval_override_s)
                if self.interval_override_s
                else _trigger(sched)
            )
            self.scheduler.add_job(
                run_vault_job,
                trigger=trigger,
                id=f"tick:{v.name}",
                args=[self.runtime_id, v.name],
                replace_existing=True,
            )
        if self.mode == Mode.SEND:
            self.scheduler.add_job(
                release_leases_job,
                trigger=IntervalTrigger(seconds=max(self.cfg.lease_s / 2, 0.25)),
                id="leases",
                args=[self.runtime_id],
                replace_existing=True,
            )

    def run_once(self, vault: str) -> None:
        if vault in self.halted or self.stop_event.is_set():
            return
        if self.clock() < self.retry_at.get(vault, 0.0):
            return  # backing off after failures in a row
        with self.lock:  # one tick at a time per process: one nonce owner, one snapshot
            try:
                self.before_tick()
                for r in self.keeper.tick(self.mode, only=vault):
                    self._after(vault, r)
            except Halt as err:
                self._halt(vault, str(err))
            except KeeperError as err:
                self._count_failure(vault, f"{type(err).__name__}: {err}")
            except Exception as err:  # the job wrapper is the one broad catch: logged, counted
                log.exception("unexpected error in tick for %s", vault)
                self._count_failure(vault, f"unexpected {type(err).__name__}: {err}")

    def before_tick(self) -> None:
        """Every endpoint's head and chain id, then the open transactions nobody drives."""
        rpc = failover_of(self.keeper.deps.w3)
        if rpc is not None:
            rpc.check_health(self.cfg.network.chain_id)
            m = self.keeper.deps.metrics
            for ep in rpc.endpoints if m else ():
                assert m is not None
                m.rpc_up.labels(ep.name).set(0 if ep.down_until > time.monotonic() else 1)
                m.rpc_lag.labels(ep.name).set(rpc.lag_of(ep) or 0)
        sender = self.keeper.deps.sender
        if sender is not None and self.mode == Mode.SEND:
            sender.recover_pending(fill_gaps=False)

    def _after(self, vault: str, r: TickResult) -> None:
        if r.verdict == "halted":
            self._halt(vault, r.reason)
        elif r.verdict in ("error", "failed", "skipped") and not expected(r):
            self._count_failure(vault, r.reason)
        else:
            self._recovered(vault)
        m = self.keeper.deps.metrics
        if m is not None:
            m.last_tick.labels(r.name).set(time.time())
            m.feed_problem.labels(r.name).set(int(r.reason.startswith("snapshot rejected")))
        if self.on_result:
            self.on_result(r)

    def _recovered(self, vault: str) -> None:
        n = self.failures.get(vault, 0)
        if n >= MAX_FAILURES_IN_A_ROW:
            log.warning("%s: resumed after %d failures in a row", vault, n)
        self.failures[vault] = 0
        self.retry_at.pop(vault, None)
        self._gauges(vault, 0, 0.0)

    def _count_failure(self, vault: str, why: str) -> None:
        n = self.failures.get(vault, 0) + 1
        self.failures[vault] = n
        log.warning("%s: failure %d in a row: %s", vault, n, why)
        pause = 0.0
        if n >= MAX_FAILURES_IN_A_ROW:
            interval = self._interval_s(vault)
            cap = self.backoff_cap_s or min(BACKOFF_CAP_S, 8 * interval)
            pause = min(interval * 2 ** (n - MAX_FAILURES_IN_A_ROW), cap)
            self.retry_at[vault] = self.clock() + pause
            if n == MAX_FAILURES_IN_A_ROW:
                log.error(
                    "ALERT %s: %d failures in a row (last: %s); backing off, up to %g s between "
                    "tries; it resumes by itself when the fault heals",
                    vault, n, why, cap,
                )
        self._gauges(vault, n, pause)

    def _gauges(self, vault: str, failures: int, pause: float) -> None:
        m = self.keeper.deps.metrics
        if m is not None:
            m.failures_in_a_row.labels(vault).set(failures)
            m.backoff.labels(vault).set(pause)

    def _interval_s(self, vault: str) -> float:
        if self.interval_override_s:
            return self.interval_override_s
        v = next((c for c in self.cfg.vaults if c.name == vault), None)
        sched = self.cfg.schedule_for(v) if v is not None else None
        return float(sched.interval_s) if sched is not None and sched.interval_s else 60.0

    def _halt(self, vault: str, why: str) -> None:
        if vault in self.halted:
            return
        self.halted[vault] = why
        log.error("ALERT %s halted until an operator acts: %s", vault, why)
        m = self.keeper.deps.metrics
        if m is not None:
            m.halted.labels(vault).set(1)

    def start(self) -> None:
        """Resolve what a previous run left pending, then schedule the ticks."""
        self.keeper.recover()
        self.schedule()
        self.scheduler.start()

    def stop(self) -> None:
        """Stop scheduling; wait for the tick in flight to finish and be recorded."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.pause()  # no new submissions while the executor winds down
            with self.lock:  # the tick in flight finishes and is recorded first
                self.scheduler.shutdown(wait=True)
        _KEEPERS.pop(self.runtime_id, None)

    def run_forever(self) -> None:
        """Start, then block until SIGINT or SIGTERM."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: finishing the tick in flight, then stopping", signum)
            self.stop_event.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.start()
        while not self.stop_event.wait(0.5):
            pass
        self.stop()


def expected(r: TickResult) -> bool:
    """Another keeper holds or executed this epoch: keepers side by side, not a fault."""
    return r.reason.startswith(EpochTaken.__name__)


def _trigger(s: ScheduleConfig) -> IntervalTrigger | CronTrigger:
    if s.cron:
        return CronTrigger.from_crontab(s.cron, timezone="UTC")
    return IntervalTrigger(seconds=s.interval_s or 60)
