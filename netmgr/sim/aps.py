"""A simulated AP fleet for the demo: every recording in devices/sim served on one UDP port.

Counters move between polls (each GET/GETBULK sees traffic grow at a steady
rate per interface) so the demo shows real rates, not zeros.
"""

from __future__ import annotations

import time
from pathlib import Path

from netmgr.paths import devices_dir
from netmgr.snmp import snmprec
from netmgr.snmp.types import Tag, VarBind

IF_COUNTERS = {(1, 3, 6, 1, 2, 1, 2, 2, 1, 10), (1, 3, 6, 1, 2, 1, 2, 2, 1, 16),
               (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10)}
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)


class LiveAgent(snmprec.Agent):
    """A recording whose interface counters and uptime advance with the clock."""

    def __init__(self, varbinds: list[VarBind], bytes_per_s: int = 250_000) -> None:
        super().__init__(varbinds)
        self.t0 = time.monotonic()
        self.rate = bytes_per_s

    def _live(self, vb: VarBind) -> VarBind:
        elapsed = time.monotonic() - self.t0
        if vb.oid == SYS_UPTIME and isinstance(vb.value, int):
            return VarBind(vb.oid, vb.tag, (vb.value + int(elapsed * 100)) % 2**32)
        if vb.oid[:-1] in IF_COUNTERS and isinstance(vb.value, int):
            moved = int(elapsed * self.rate * (1 + vb.oid[-1] % 3))
            mod = 2**64 if vb.tag == Tag.COUNTER64 else 2**32
            return VarBind(vb.oid, vb.tag, (vb.value + moved) % mod)
        return vb

    def get(self, oid):  # type: ignore[no-untyped-def]
        return self._live(super().get(oid))

    def next(self, oid):  # type: ignore[no-untyped-def]
        return self._live(super().next(oid))


async def start_fleet(
    directory: Path | None = None, host: str = "127.0.0.1", port: int = 0
) -> snmprec.UdpAgent:
    """Serve every recording of ``directory`` (default devices/sim); community = file name."""
    d = directory or devices_dir() / "sim"
    recordings = {p.stem: snmprec.load(p) for p in sorted(d.glob("*.snmprec"))}
    agent = snmprec.UdpAgent(recordings)
    agent.agents = {name.encode(): LiveAgent(vbs) for name, vbs in recordings.items()}
    return await agent.start(host, port)
