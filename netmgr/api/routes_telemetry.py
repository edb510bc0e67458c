"""/api/v1/aps/{name}/history and /api/v1/speakers/{id}/history: recent telemetry from the SQLite ring.

Any caller with a token may read (as for the inventory's GET routes). The ring
is ``{state_dir}/telemetry.db``, opened read-only per request in a thread (WAL:
the telemetry service keeps writing meanwhile); no ring yet means no rows.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from netmgr.api.deps import principal, session
from netmgr.api.routes_inventory import find_ap, find_speaker
from netmgr.auth import Principal
from netmgr.telemetry import ring

router = APIRouter()
Caller = Annotated[Principal, Depends(principal)]
Session = Annotated[AsyncSession, Depends(session)]
Minutes = Annotated[int, Query(ge=1, le=7 * 24 * 60, description="how far back, in minutes")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="at most this many rows (the newest)")]

AP_FIELDS = ("up", "response_ms", "clients", "cpu_pct", "mem_used_pct", "uptime_s")
SPEAKER_FIELDS = ("online", "rssi_dbm", "volume", "playing", "priority", "temperature_c", "voltage_v",
                  "uptime_s")


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="seconds")


def _ring_path(request: Request) -> Any:
    return request.app.state.settings.daemon.state_dir / "telemetry.db"


def ap_rows(path: Any, name: str, since_ns: int, limit: int) -> list[dict[str, Any]]:
    """One row per poll: the AP's fields and the busiest interface's rx/tx (bit/s)."""
    polls = ring.history(path, "ap", "ap", name, since_ns, AP_FIELDS, limit)
    busiest: dict[int, tuple[float, str, float | None, float | None]] = {}
    if polls:
        for r in ring.history(path, "ap_if", "ap", name, polls[0]["ts"], ("rx_bps", "tx_bps"), limit * 64):
            f = r["fields"]
            rx, tx = f.get("rx_bps"), f.get("tx_bps")
            total = (rx or 0.0) + (tx or 0.0)
            best = busiest.get(r["ts"])
            if best is None or total > best[0]:
                busiest[r["ts"]] = (total, r["tags"].get("ifname", ""), rx, tx)
    out = []
    for p in polls:
        _, ifname, rx, tx = busiest.get(p["ts"], (0.0, None, None, None))
        out.append({"ts": _iso(p["ts"]), **{k: p["fields"].get(k) for k in AP_FIELDS},
                    "ifname": ifname, "rx_bps": rx, "tx_bps": tx})
    return out


@router.get("/aps/{name}/history", tags=["telemetry"])
async def ap_history(name: str, request: Request, who: Caller, s: Session, minutes: Minutes = 60,
                     limit: Limit = 60) -> dict[str, Any]:
    """Recent polls of one AP from the ring, oldest first."""
    await find_ap(s, name, who)
    since = time.time_ns() - minutes * 60 * 10**9
    rows = await asyncio.to_thread(ap_rows, _ring_path(request), name, since, limit)
    return {"ap": name, "since": _iso(since), "items": rows, "count": len(rows)}


@router.get("/speakers/{node_id}/history", tags=["telemetry"])
async def speaker_history(node_id: str, request: Request, who: Caller, s: Session, minutes: Minutes = 60,
                          limit: Limit = 60) -> dict[str, Any]:
    """Recent telemetry and status changes of one speaker node from the ring, oldest first."""
    await find_speaker(s, node_id, who)
    since = time.time_ns() - minutes * 60 * 10**9
    rows = await asyncio.to_thread(ring.history, _ring_path(request), "speaker", "node", node_id, since,
                                   SPEAKER_FIELDS, limit)
    items = [{"ts": _iso(r["ts"]), **{k: r["fields"].get(k) for k in SPEAKER_FIELDS}} for r in rows]
    return {"node": node_id, "since": _iso(since), "items": items, "count": len(items)}
