"""Ledger faults (fault test 29): a corrupt or locked SQLite ledger stops the keeper with a clear
error; it is never reset, and the records survive."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keeper.cli import app
from tests.faults.conftest import ChainCtl, Kit, push_out_of_band, ticks

pytestmark = pytest.mark.chain
runner = CliRunner()


def _one_line(text: str) -> str:
    return " ".join(text.split())


_HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held_by_another_process(db: Path) -> Iterator[None]:
    """Another process (as another keeper or a sqlite3 shell would be) holds the ledger's write
    lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "held", f"no process could lock {db}"
        yield
    finally:
        proc.communicate("\n", timeout=30)  # releases the lock and ends the holder


def replace_with_garbage(db: Path) -> bytes:
    """Garbage where the ledger was, its WAL and shm files gone; returns the garbage."""
    for side in db.parent.glob(db.name + "-*"):
        side.unlink()
    garbage = b"this is not a sqlite database " * 200
    db.write_bytes(garbage)
    return garbage


def test_corrupt_or_locked_ledger_clear_error_no_silent_reset(kit: Kit, chain: ChainCtl) -> None:
    env = kit.env
    cfg = ["--config", str(env.config)]
    assert runner.invoke(app, ["check", *cfg]).exit_code == 0  # a ledger with one tick
    before = ticks(env)
    assert len(before) == 1
    push_out_of_band(env)

    with write_lock_held_by_another_process(env.ledger):
        out = runner.invoke(app, ["rebalance", "--yes", *cfg])
    assert out.exit_code == 1, out.output
    assert "is locked by another process" in _one_line(out.stderr)
    assert chain.sent_count(env.keeper) == 0 and ticks(env) == before  # records intact

    # corrupt: garbage where the database was
    garbage = replace_with_garbage(env.ledger)
    out = runner.invoke(app, ["rebalance", "--yes", *cfg])
    assert out.exit_code == 1, out.output
    assert "corrupt or not a SQLite database" in _one_line(out.stderr)
    assert "never reset automatically" in _one_line(out.stderr)
    assert env.ledger.read_bytes() == garbage  # untouched: no silent reset
    assert chain.sent_count(env.keeper) == 0


def test_a_command_leaves_no_connection_open_on_the_ledger(kit: Kit) -> None:
    """A command closes its store before it returns. A connection left open would, whenever it
    is finally closed, checkpoint its write-ahead log into the ledger file: over a file an
    operator had moved aside or replaced, and through another process's lock."""
    env = kit.env
    assert runner.invoke(app, ["check", "--config", str(env.config)]).exit_code == 0
    garbage = replace_with_garbage(env.ledger)
    gc.collect()  # whatever the command left behind is closed now
    assert env.ledger.read_bytes() == garbage
