"""`keeper status`: one read of every vault plus the ledger's pending txs and recent decisions."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from keeper.config import KeeperConfig
from keeper.ledger import Ledger
from keeper.read import ReadTarget, read_snapshot
from keeper.wiring import connect


def gather_status(cfg: KeeperConfig) -> dict[str, Any]:
    w3 = connect(cfg)
    symbols = {t.address.lower(): s for s, t in cfg.contracts.tokens.items()}
    targets = [ReadTarget(address=str(v.address), symbols=symbols) for v in cfg.vaults]
    snap = read_snapshot(w3, cfg.contracts.multicall3, targets, chain_id=cfg.network.chain_id)
    with Ledger(cfg.store_location) as ledger:
        pending = [
            {
                "id": t.id,
                "nonce": t.nonce,
                "purpose": t.purpose,
                "vault": t.vault,
                "status": str(t.status),
                "hashes": [a.hash for a in t.attempts],
            }
            for t in ledger.pending_txs(cfg.network.chain_id)
        ]
        recent = [
            {
                "vault": d.vault,
                "block": d.block_number,
                "decision": d.decision,
                "verdict": d.verdict,
                "reason": d.reason,
            }
            for d in ledger.recent_decisions(limit=10)
        ]
    vaults = [_vault(v.name, s) for v, s in zip(cfg.vaults, snap.vaults, strict=True)]
    return {
        "network": cfg.network.name,
        "block": snap.block_number,
        "block_ts": snap.block_ts,
        "vaults": vaults,
        "pending": pending,
        "recent": recent,
    }


def _vault(name: str, s: Any) -> dict[str, Any]:
    c = s.collateral
    return {
        "name": name,
        "address": s.address,
        "nav_usd": s.nav_e18 / 10**18,
        "epoch": s.epoch,
        "paused": s.paused,
        "problems": list(s.feed_problems),
        "assets": [
            {
                "symbol": a.symbol,
                "weight_bps": a.weight_bps,
                "target_bps": a.target_bps,
                "inner_bps": a.inner_band_bps,
                "outer_bps": a.outer_band_bps,
                "price": a.feed.answer / 10**a.feed.decimals,
            }
            for a in s.assets
        ],
        "collateral": None
        if c is None
        else {
            "ltv_bps": c.ltv_bps,
            "target_ltv_bps": c.target_ltv_bps,
            "band": [c.min_ltv_bps, c.max_ltv_bps],
            "health_factor": c.health_factor_e18 / 10**18,
        },
    }


def print_status(console: Console, st: dict[str, Any]) -> None:
    console.print(f"[bold]{st['network']}[/] at block {st['block']}")
    for v in st["vaults"]:
        t = Table(
            title=f"{v['name']} {v['address']}  NAV ${v['nav_usd']:,.0f}  epoch {v['epoch']}"
            + ("  PAUSED" if v["paused"] else "")
        )
        for col in ("asset", "weight", "target", "deviation", "inner band", "outer band",
                    "state", "oracle price"):
            t.add_column(col, justify="left" if col in ("asset", "state") else "right")
        for a in v["assets"]:
            dev = a["weight_bps"] - a["target_bps"]
            t.add_row(
                a["symbol"],
                f"{a['weight_bps'] / 100:.2f}%",
                f"{a['target_bps'] / 100:g}%",
                f"{dev / 100:+.2f}%",
                f"±{a['inner_bps'] / 100:g}%",
                f"±{a['outer_bps'] / 100:g}%",
                band_state(abs(dev), a["inner_bps"], a["outer_bps"]),
                f"${a['price']:,.4f}",
            )
        console.print(t)
        if v["collateral"]:
            console.print(f"collateral: {v['collateral']}")
        for p in v["problems"]:
            console.print(f"[red]feed problem:[/] {p}")
    console.print(f"pending transactions: {len(st['pending'])}")
    for p in st["pending"]:
        console.print(f"  {p}")
    rt = Table(title="recent decisions")
    for col in ("vault", "block", "decision", "verdict", "reason"):
        rt.add_column(col, overflow="fold")
    for d in st["recent"]:
        rt.add_row(d["vault"][:10], str(d["block"]), d["decision"], str(d["verdict"]), d["reason"])
    console.print(rt)


def band_state(dev_bps: int, inner_bps: int, outer_bps: int) -> str:
    """ok: inside the inner band; drift: between the bands (the policy may act); OUTSIDE: past
    the outer band (a rebalance is required)."""
    return "OUTSIDE" if dev_bps > outer_bps else ("drift" if dev_bps > inner_bps else "ok")
