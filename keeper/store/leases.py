"""Epoch leases with fencing tokens (one keeper per vault epoch, across processes and hosts).

A lease row (vault, epoch) names its owner (`host:pid:id`), an expiry and a fencing token. The
token rises at every acquisition of any epoch of the vault, so a keeper that was paused past its
expiry and comes back holds a token that no longer matches: `renew` (called right before every
broadcast and while a transaction is tracked) fails, and it must not broadcast. The on-chain
epoch is the last fence. Expiry uses the database's clock on PostgreSQL (keepers on several
hosts need one clock) and the local clock on SQLite (one host).

A lease whose owner is a process of this host that no longer exists is taken over at once; one
owned by another host waits for its expiry.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, and_, func, insert, select, text, update
from sqlalchemy.engine import Connection

from keeper.store.schema import epoch_locks


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseView:
    owner: str
    expires_ts: float
    done: bool
    token: int


def host_id() -> str:
    """This machine's identity in lease owners: KEEPER_HOST_ID, else the host name and boot id
    (two containers with one host name on different machines still differ)."""
    override = os.environ.get("KEEPER_HOST_ID")
    if override:
        return override.replace(":", "_")
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "noboot"
    return f"{socket.gethostname()}/{boot}".replace(":", "_")


def owner_id(tag: str) -> str:
    return f"{host_id()}:{os.getpid()}:{tag}"


def owner_is_dead(owner: str) -> bool:
    """True only for an owner on this host whose process is gone."""
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != host_id() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def db_now(conn: Connection) -> float:
    if conn.dialect.name == "postgresql":
        now = conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one()
        return float(now)
    return time.time()


def lock_vault(conn: Connection, vault: str) -> None:
    """Serialise lease changes of one vault (SQLite: BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:v))"), {"v": "lease:" + vault})


def view(conn: Connection, vault: str, epoch: str) -> LeaseView | None:
    row = conn.execute(
        select(epoch_locks).where(epoch_locks.c.vault == vault, epoch_locks.c.epoch == epoch)
    ).first()
    if row is None:
        return None
    return LeaseView(
        owner=row.owner, expires_ts=float(row.expires_ts), done=bool(row.done), token=row.token
    )


def take(conn: Connection, vault: str, epoch: str, owner: str, ttl_s: float, now: float) -> int:
    """The new fencing token, or 0 when another live owner holds it or the epoch is done."""
    lock_vault(conn, vault)
    held = view(conn, vault, epoch)
    if held is not None and (held.done or _held_by_other(held, owner, now)):
        return 0
    top = conn.execute(
        select(func.max(epoch_locks.c.token)).where(epoch_locks.c.vault == vault)
    ).scalar()
    token = int(top or 0) + 1
    values = {"owner": owner, "expires_ts": now + ttl_s, "token": token}
    if held is None:
        conn.execute(insert(epoch_locks).values(vault=vault, epoch=epoch, done=0, **values))
    else:
        conn.execute(update(epoch_locks).where(_key(vault, epoch)).values(**values))
    return token


def _held_by_other(held: LeaseView, owner: str, now: float) -> bool:
    if held.owner == owner:
        return False
    return held.expires_ts > now and not owner_is_dead(held.owner)


def renew(
    conn: Connection, vault: str, epoch: str, owner: str, token: int, ttl_s: float, now: float
) -> bool:
    """Extend the lease if it is still ours with this token and not expired (the fence)."""
    result = conn.execute(
        update(epoch_locks)
        .where(
            _key(vault, epoch),
            epoch_locks.c.owner == owner,
            epoch_locks.c.token == token,
            epoch_locks.c.done == 0,
            epoch_locks.c.expires_ts > now,
        )
        .values(expires_ts=now + ttl_s)
    )
    return result.rowcount == 1


def _key(vault: str, epoch: str) -> ColumnElement[bool]:
    return and_(epoch_locks.c.vault == vault, epoch_locks.c.epoch == epoch)


def orphans(conn: Connection, now: float) -> list[tuple[str, str, str]]:
    """Unfinished leases whose owner is gone: expired, or a dead process of this host."""
    rows = conn.execute(
        select(
            epoch_locks.c.vault, epoch_locks.c.epoch, epoch_locks.c.owner, epoch_locks.c.expires_ts
        ).where(epoch_locks.c.done == 0)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows if r[3] <= now or owner_is_dead(r[2])]
