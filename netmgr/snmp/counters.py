"""Rates from SNMP counters, done right.

- Counter32 wraps at 2**32: one wrap between two polls is taken into account.
- Counter64 does not wrap in practice: a decrease is a reset.
- A reboot or counter reset yields no rate (never a spike, never a negative
  rate): detected by sysUpTime going backwards, by sysUpTime advancing much
  less than the wall clock did, or by a rate above what the interface can carry.
"""

from __future__ import annotations

from dataclasses import dataclass

WRAP32 = 2**32
UPTIME_WRAP = 2**32  # sysUpTime (TimeTicks) wraps after ~497 days


@dataclass(frozen=True, slots=True)
class Sample:
    """One counter reading: the value, its width, the agent's uptime and our clock (seconds)."""

    value: int
    t: float
    uptime_ticks: int | None = None
    bits: int = 32


def restarted(prev: Sample, cur: Sample) -> bool:
    """True when the agent rebooted (or reset its counters) between the two samples."""
    if prev.uptime_ticks is None or cur.uptime_ticks is None:
        return False
    dt = cur.t - prev.t
    d_up = cur.uptime_ticks - prev.uptime_ticks
    if d_up < 0:
        # A genuine uptime wrap after 497 days looks like this too: accept it only if the
        # old value was near the top and the new one fits the elapsed time.
        wrapped = d_up + UPTIME_WRAP
        return not (prev.uptime_ticks > UPTIME_WRAP - 100 * (dt + 60) and abs(wrapped / 100 - dt) < dt + 60)
    # Uptime advanced far less than our clock: it restarted and has been up a shorter time.
    return d_up / 100 < dt * 0.5 - 5


def counter_delta(prev: Sample, cur: Sample) -> int | None:
    """How much the counter moved, or None if that cannot be known (reset, reboot)."""
    if restarted(prev, cur):
        return None
    d = cur.value - prev.value
    if d >= 0:
        return d
    if cur.bits == 32 and prev.bits == 32:
        return d + WRAP32
    return None


def rate(
    prev: Sample | None, cur: Sample, *, scale: float = 1.0, max_rate: float | None = None
) -> float | None:
    """Per-second rate of the counter (times ``scale``, e.g. 8 for octets to bits), or None.

    ``max_rate`` is what the link can carry: a larger result (a wrap that was
    really a reset, a counter jump) is discarded rather than drawn as a spike.
    """
    if prev is None or prev.bits != cur.bits:
        return None
    dt = cur.t - prev.t
    if dt <= 0:
        return None
    d = counter_delta(prev, cur)
    if d is None:
        return None
    r = d * scale / dt
    if max_rate is not None and max_rate > 0 and r > max_rate * 1.1:
        return None
    return r
