"""The telemetry points of one AP poll (measurements ``ap``, ``ap_if``, ``ap_radio`` of
docs/telemetry.md), built from the poller's state. netmgr.telemetry knows points, not APs: the
poller hands these to its hub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netmgr.telemetry.points import Point, channel_band, district_of

if TYPE_CHECKING:
    from netmgr.snmp.evaluate import Interface, PollResult, Radio
    from netmgr.snmp.state import ApRuntime

IF_SOFTWARE_LOOPBACK = 24  # IANAifType softwareLoopback: no traffic worth a series


def ap_up(ap: ApRuntime) -> int:
    """1 when the AP is up, as ``netmgr ap list`` says (the poller's hysteresis), else 0.

    Before the hysteresis has decided (status "unknown"), the poll's own outcome.
    """
    status = ap.reach.status
    if status == "up":
        return 1
    if status == "down":
        return 0
    return 1 if ap.last_error is None and ap.last_ok is not None else 0


def ap_points(ap: ApRuntime, now_ns: int) -> list[Point]:
    """The points of one poll of ``ap``: one ``ap``, and when the poll succeeded one ``ap_if``
    per interface (software loopbacks left out) and one ``ap_radio`` per radio."""
    res = ap.result
    fields: dict[str, Any] = {"up": ap_up(ap)}
    if ap.lat is not None and ap.lon is not None:
        fields["lat"], fields["lon"] = float(ap.lat), float(ap.lon)
    out = [Point("ap", _ap_tags(ap), fields, now_ns)]
    if ap.last_error is not None or res is None:
        return out  # a failed poll measured nothing: no stale values from the last good one
    fields.update(_measured(ap, res))
    out += _interface_points(ap, res, now_ns)
    out += [pt for radio in res.radios if (pt := _radio_point(ap, radio, now_ns)) is not None]
    return out


def _ap_tags(ap: ApRuntime) -> dict[str, str]:
    prof, res = ap.profile, ap.result
    return {"ap": ap.name, "zone": ap.zone, "district": district_of(ap.zone),
            "vendor": prof.vendor if prof is not None else (res.vendor if res is not None else ""),
            "profile": prof.name if prof is not None else (res.profile if res is not None else "")}


def _measured(ap: ApRuntime, res: PollResult) -> dict[str, Any]:
    """The ``ap`` fields a successful poll measured."""
    f: dict[str, Any] = {}
    if ap.response_ms is not None:
        f["response_ms"] = float(ap.response_ms)
    if res.uptime_ticks is not None:
        f["uptime_s"] = res.uptime_ticks / 100
    if res.clients_total is not None:
        f["clients"] = int(res.clients_total)
    if res.cpu_pct is not None:
        f["cpu_pct"] = float(res.cpu_pct)
    if res.mem_used_bytes is not None and res.mem_total_bytes:
        f["mem_used_pct"] = 100.0 * res.mem_used_bytes / res.mem_total_bytes
    return f


def _interface_points(ap: ApRuntime, res: PollResult, now_ns: int) -> list[Point]:
    out = []
    seen: set[str] = set()
    for itf in res.interfaces:
        if itf.type == IF_SOFTWARE_LOOPBACK:
            continue
        ifname = itf.name
        if ifname in seen:  # two rows with one name would overwrite each other in one series
            ifname = f"{ifname}#{itf.index}"
        seen.add(ifname)
        f = _interface_fields(itf, ap.rates.get(itf.index))
        if f:
            out.append(Point("ap_if", {"ap": ap.name, "zone": ap.zone, "ifname": ifname}, f, now_ns))
    return out


def _interface_fields(itf: Interface, rates: dict[str, float | None] | None) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if rates is not None:
        for key, field in (("in_bps", "rx_bps"), ("out_bps", "tx_bps")):
            if rates.get(key) is not None:
                f[field] = float(rates[key])  # type: ignore[arg-type]
    for key in ("in_errors", "out_errors"):
        value = getattr(itf, key)
        if value is not None:
            f[key] = int(value)
    if itf.oper_status is not None:
        f["oper_up"] = 1 if itf.oper_status == 1 else 0
    return f


def _radio_point(ap: ApRuntime, radio: Radio, now_ns: int) -> Point | None:
    channel, band = channel_band(radio.channel)
    f: dict[str, Any] = {}
    if radio.clients is not None:
        f["clients"] = int(radio.clients)
    if channel is not None:
        f["channel"] = int(channel)
    if radio.noise_dbm is not None:
        f["noise_dbm"] = float(radio.noise_dbm)
    if radio.tx_power is not None:
        f["tx_power_dbm"] = float(radio.tx_power)
    if not f:
        return None
    return Point("ap_radio", {"ap": ap.name, "zone": ap.zone, "radio": radio.name, "band": band}, f, now_ns)
