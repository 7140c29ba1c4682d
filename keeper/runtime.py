"""APScheduler runtime: one job per vault, a persistent job store, no overlapping runs,
a failure counter that halts a vault after N errors in a row, and a clean shutdown on
SIGINT/SIGTERM that lets the tick in flight finish (and be recorded) before exiting.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from keeper.app import Keeper, Mode
from keeper.config import KeeperConfig, ScheduleConfig
from keeper.errors import Halt, KeeperError
from keeper.models import TickResult

log = logging.getLogger("keeper.runtime")
MAX_FAILURES_IN_A_ROW = 5
# Jobs are stored by reference and find their Keeper here (a job store cannot pickle a Keeper).
_KEEPERS: dict[str, Runtime] = {}


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
    stop_event: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def run_once(self, vault: str) -> None:
        if vault in self.halted or self.stop_event.is_set():
            return
        with self.lock:  # one tick at a time per process: one nonce owner, one snapshot
            try:
                for r in self.keeper.tick(self.mode, only=vault):
                    self._after(vault, r)
            except Halt as err:
                self._halt(vault, str(err))
            except KeeperError as err:
                self._count_failure(vault, f"{type(err).__name__}: {err}")
            except Exception as err:  # the job wrapper is the one broad catch: logged, counted
                log.exception("unexpected error in tick for %s", vault)
                self._count_failure(vault, f"unexpected {type(err).__name__}: {err}")

    def _after(self, vault: str, r: TickResult) -> None:
        if r.verdict in ("error", "failed"):
            self._count_failure(vault, r.reason)
        else:
            self.failures[vault] = 0
        if self.on_result:
            self.on_result(r)

    def _count_failure(self, vault: str, why: str) -> None:
        n = self.failures.get(vault, 0) + 1
        self.failures[vault] = n
        log.warning("%s: failure %d in a row: %s", vault, n, why)
        if n >= MAX_FAILURES_IN_A_ROW:
            self._halt(vault, f"{n} failures in a row, last: {why}")

    def _halt(self, vault: str, why: str) -> None:
        self.halted[vault] = why
        log.error("%s halted: %s", vault, why)

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


def _trigger(s: ScheduleConfig) -> IntervalTrigger | CronTrigger:
    if s.cron:
        return CronTrigger.from_crontab(s.cron, timezone="UTC")
    return IntervalTrigger(seconds=s.interval_s or 60)
