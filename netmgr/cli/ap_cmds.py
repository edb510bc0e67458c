"""``netmgr ap``: access point inventory (the poller's commands join later)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.cli.inventory_cmds import import_command, location_options, parse_tags, remove_command
from netmgr.cli.output import filtered_list, print_fields, print_table, print_times_in, with_history
from netmgr.humanize import format_bps, format_bytes, format_duration, format_time


@click.group()
def ap() -> None:
    """Wi-Fi access points."""


@ap.command("add")
@click.argument("name")
@click.option("--host", required=True, help="IP address or host name of the AP's SNMP agent.")
@click.option("--port", type=click.IntRange(1, 65535), default=161, show_default=True)
@click.option("--community", help="SNMPv2c community (default: [snmp] default_community).")
@click.option("--v3-user", help="SNMPv3 user (then --auth-key, and --priv-key for authPriv).")
@click.option("--auth-key")
@click.option("--priv-key")
@click.option("--auth-proto", type=click.Choice(["SHA", "SHA256", "MD5"]))
@click.option("--priv-proto", type=click.Choice(["AES", "AES256", "DES"]))
@click.option("--profile", help="Force a vendor profile instead of matching sysObjectID.")
@location_options
@json_option
@pass_ctx
def add(obj: CliContext, name: str, host: str, port: int, community: str | None, v3_user: str | None,
        auth_key: str | None, priv_key: str | None, auth_proto: str | None, priv_proto: str | None,
        profile: str | None, zone: str, lat: float | None, lon: float | None, tags: tuple[str, ...],
        as_json: bool) -> None:
    """Add an AP to the inventory; the poller picks it up at its next reload."""
    if community and v3_user:
        raise click.UsageError("give either --community (v2c) or --v3-user (v3), not both")
    snmp = {"version": "3" if v3_user else "2c", "community": community, "v3_user": v3_user,
            "auth_key": auth_key, "priv_key": priv_key, "auth_proto": auth_proto, "priv_proto": priv_proto}
    body = {"name": name, "host": host, "port": port, "zone": zone, "lat": lat, "lon": lon,
            "tags": parse_tags(tags), "profile": profile,
            "snmp": {k: v for k, v in snmp.items() if v is not None}}
    r = obj.client().post("/api/v1/aps", body)
    echo_json(r) if as_json else echo(f"added AP {r['name']} ({r['host']}:{r['port']}) in {r['zone']}")


ap.add_command(import_command("aps", """Import APs from CSV or YAML
(name,host,zone[,port,community,v3_user,auth_key,priv_key,lat,lon,tags]).

All or nothing: any bad line refuses the whole file, every problem listed with its line.
Existing names are updated.
"""))


@ap.command("list")
@filtered_list("/api/v1/aps", ["up", "down", "unknown"])
def list_(obj: CliContext, items: list[dict[str, Any]], wide: bool) -> None:
    """List APs with their status, clients and last poll."""
    tz = obj.tz()
    rows = [{**i, "zone_name": obj.zone_name(i["zone"]), "last": format_time(i.get("last_poll"), tz),
             "vendor_model": " ".join(x for x in (i.get("vendor"), i.get("model")) if x),
             "since": format_time(i.get("status_since"), tz)} for i in items]
    print_table(rows, [("name", "name", "essential"), ("zone_name", "zone", "essential"),
                       ("status", "status", "essential"), ("clients", "clients"), ("last", "last poll"),
                       ("vendor_model", "vendor/model"), ("since", "status since", "wide"),
                       ("host", "host", "wide"), ("zone", "zone path", "wide")], wide=wide, tz=tz)
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("up", "down", "unknown")}
    echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no APs")


@ap.command("show")
@with_history("aps", "name", "", "polls, from the telemetry ring,")
def show(obj: CliContext, r: dict[str, Any]) -> None:
    """One AP: profile, interfaces with rates, radios, clients, recent status changes and polls."""
    tz = obj.tz()
    _echo_ap_status(r, tz, obj.zone_name(r["zone"]))
    _echo_ap_tables(r, tz)
    print_times_in(tz)


def _echo_ap_status(r: dict[str, Any], tz: tzinfo, zone_name: str) -> None:
    """The text lines of ``ap show``: identity, status, profile, system, error, clients, cpu/memory."""
    echo(f"{r['name']}  {r['host']}:{r['port']}")
    since = format_time(r.get("status_since"), tz)
    ms = None if r.get("response_ms") is None else f"{r['response_ms']:g} ms"
    clients = "-" if r.get("clients") is None else str(r["clients"])
    cpu = None if r.get("cpu_pct") is None else f"{r['cpu_pct']:g} %"
    print_fields([
        ("zone", f"{zone_name} ({r['zone']})" if zone_name != r["zone"] else zone_name),
        ("status", f"{r['status']}" + (f" since {since}" if since else "") + f", {r.get('flaps', 0)} flaps"),
        ("profile", f"{r.get('matched_profile') or '-'} ({r.get('vendor') or ''} {r.get('model') or ''})"),
        ("system", r.get("sys_name")), ("uptime", format_duration(r.get("uptime_s"))),
        ("last poll", format_time(r.get("last_poll"), tz) + (f", answered in {ms}" if ms else "")),
        ("error", r.get("last_error")),
        ("clients", clients + "".join(f"  {k}: {v}" for k, v in (r.get("clients_by_ssid") or {}).items())),
        ("cpu", cpu),
        ("memory", _memory(r.get("mem_used"), r.get("mem_total")) if r.get("mem_total") else None),
    ], width=9)


def _memory(used: int | None, total: int | None) -> str:
    if not total:
        return format_bytes(used) or "-"
    return f"{format_bytes(used) or '-'} of {format_bytes(total)}" + (
        f" ({used / total:.0%})" if used is not None else "")


def _echo_ap_tables(r: dict[str, Any], tz: tzinfo) -> None:
    """The tables of ``ap show``: interfaces, radios, the last status changes and recent polls."""
    rows = [{"name": i["name"], "status": {1: "up", 2: "down"}.get(i.get("oper_status"), "?"),
             "in": format_bps(i.get("in_bps")), "out": format_bps(i.get("out_bps")),
             "bits": i.get("counter_bits"), "errors": f"{i.get('in_errors') or 0}/{i.get('out_errors') or 0}"}
            for i in r.get("interfaces", [])]
    if rows:
        print_table(rows, [("name", "interface", "essential"), ("status", "oper", "essential"), ("in", "in"),
                           ("out", "out"), ("errors", "errors in/out"), ("bits", "counter bits")])
    if r.get("radios"):
        print_table(r["radios"], [("name", "radio", "essential"), ("channel", "channel"),
                                  ("noise_dbm", "noise dBm"), ("clients", "clients")])
    for e in r.get("events", [])[:10]:
        echo(f"{format_time(e['ts'], tz)}  {e['status']:5} {e['detail']}")
    if r["history"]:
        print_table([_history_row(h, tz) for h in r["history"]],
                    [("time", "time", "essential"), ("up", "up", "essential"), ("ms", "resp ms"),
                     ("clients", "clients"), ("rx", "rx Mbit/s"), ("tx", "tx Mbit/s"),
                     ("ifname", "busiest if")],
                    title=f"last {len(r['history'])} polls since {format_time(r['history'][0]['ts'], tz)}")


def _history_row(h: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    def mbit(v: float | None) -> str:
        return "-" if v is None else f"{v / 1e6:.2f}"

    ms, clients = h.get("response_ms"), h.get("clients")
    return {"time": format_time(h["ts"], tz, date=False), "up": {1: "up", 0: "down"}.get(h.get("up"), "?"),
            "ms": "-" if ms is None else f"{ms:.1f}", "clients": "-" if clients is None else clients,
            "rx": mbit(h.get("rx_bps")), "tx": mbit(h.get("tx_bps")), "ifname": h.get("ifname") or "-"}


ap.add_command(remove_command("aps", "an AP", "name"))


def _target(name: str, host: str, port: int, community: str | None, v3_user: str | None,
            auth_key: str | None, priv_key: str | None, auth_proto: str | None, priv_proto: str | None,
            timeout: float, retries: int, obj: CliContext) -> object:
    from netmgr.snmp.client import Target

    if community and v3_user:
        raise click.UsageError("give either --community (v2c) or --v3-user (v3), not both")
    if v3_user:
        return Target(name, host, port, version="3", v3_user=v3_user, auth_key=auth_key, priv_key=priv_key,
                      auth_proto=auth_proto or ("SHA" if auth_key else None),
                      priv_proto=priv_proto or ("AES" if priv_key else None), timeout=timeout,
                      retries=retries)
    if community is None:
        community = obj.settings().snmp.default_community.get_secret_value()
    return Target(name, host, port, community=community, timeout=timeout, retries=retries)


def snmp_options(f: object) -> object:
    for opt in reversed([
        click.option("--community", help="SNMPv2c community (default: [snmp] default_community)."),
        click.option("--v3-user"), click.option("--auth-key"), click.option("--priv-key"),
        click.option("--auth-proto", type=click.Choice(["SHA", "SHA256", "MD5"])),
        click.option("--priv-proto", type=click.Choice(["AES", "AES256", "DES"])),
        click.option("--timeout", type=click.FloatRange(0.05, 60), default=2.0, show_default=True),
        click.option("--retries", type=click.IntRange(0, 10), default=1, show_default=True),
    ]):
        f = opt(f)
    return f


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]"), int(port)
    return value.strip("[]"), 161


@ap.command("poll")
@click.argument("address", metavar="HOST[:PORT]")
@click.option("--profile", help="Force a vendor profile instead of matching sysObjectID.")
@snmp_options
@json_option
@pass_ctx
def poll(obj: CliContext, address: str, profile: str | None, community: str | None, v3_user: str | None,
         auth_key: str | None, priv_key: str | None, auth_proto: str | None, priv_proto: str | None,
         timeout: float, retries: int, as_json: bool) -> None:
    """Poll one agent now (no daemon needed): matched profile, system, interfaces, clients."""
    import asyncio
    import dataclasses

    from netmgr.snmp.client import SnmpClient
    from netmgr.snmp.poller import poll_agent
    from netmgr.snmp.profiles import load_profiles

    host, port = _host_port(address)
    target = _target(address, host, port, community, v3_user, auth_key, priv_key, auth_proto, priv_proto,
                     timeout, retries, obj)
    profiles = load_profiles()
    if profile and profile not in profiles.by_name:
        known = ", ".join(sorted(profiles.by_name))
        raise click.BadParameter(f"unknown profile {profile!r}; known: {known}", param_hint="--profile")

    async def go() -> tuple[object, float]:
        async with SnmpClient() as client:
            return await poll_agent(client, target, profiles, profile)  # type: ignore[arg-type]

    result, ms = asyncio.run(go())
    data = dataclasses.asdict(result) | {"host": host, "port": port, "response_ms": round(ms, 1)}
    if as_json:
        echo_json(data)
        return
    echo(f"{address}: profile {result.profile} ({result.vendor} {result.family}) in {ms:.0f} ms")
    echo(f"  sysName {result.sys_name!r}  sysObjectID {result.sys_object_id}")
    echo(f"  sysDescr {result.sys_descr[:100]!r}")
    up = "-" if result.uptime_ticks is None else format_duration(result.uptime_ticks / 100)
    cpu = "-" if result.cpu_pct is None else f"{result.cpu_pct:g} %"
    echo(f"  uptime {up}  cpu {cpu}  memory {_memory(result.mem_used_bytes, result.mem_total_bytes)}")
    total = "-" if result.clients_total is None else result.clients_total
    echo(f"  clients {total}" + "".join(f"  {k}: {v}" for k, v in result.clients_by_ssid.items()))
    if result.interfaces:
        print_table([{**dataclasses.asdict(i), "oper": {1: "up", 2: "down"}.get(i.oper_status, "?"),
                      "speed": format_bps(i.speed_bps) if i.speed_bps else "-"} for i in result.interfaces],
                    [("index", "#", "essential"), ("name", "name", "essential"), ("oper", "oper"),
                     ("speed", "speed"), ("in_octets", "in octets"), ("out_octets", "out octets"),
                     ("counter_bits", "counter bits")])
    if result.radios:
        print_table([dataclasses.asdict(r) for r in result.radios],
                    [("name", "radio"), ("channel", "channel"), ("noise_dbm", "noise"),
                     ("clients", "clients")])


@ap.command("discover")
@click.argument("cidr")
@click.option("--port", type=click.IntRange(1, 65535), default=161, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=128, show_default=True)
@click.option("--add", is_flag=True, help="Add the responding agents to the inventory (needs --zone).")
@click.option("--zone", help="Zone for --add.")
@snmp_options
@json_option
@pass_ctx
def discover(obj: CliContext, cidr: str, port: int, concurrency: int, add: bool, zone: str | None,
             community: str | None, v3_user: str | None, auth_key: str | None, priv_key: str | None,
             auth_proto: str | None, priv_proto: str | None, timeout: float, retries: int,
             as_json: bool) -> None:
    """Find SNMP agents in CIDR (bounded, concurrent) and show the profile each matches."""
    import asyncio
    import ipaddress

    from rich.progress import Progress

    from netmgr.snmp.client import SnmpClient
    from netmgr.snmp.discover import identify
    from netmgr.snmp.profiles import load_profiles

    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="CIDR") from None
    if net.num_addresses > 65536:
        raise click.BadParameter(f"{cidr} has {net.num_addresses} addresses; scan at most a /16 at once",
                                 param_hint="CIDR")
    if add and not zone:
        raise click.UsageError("--add needs --zone")
    hosts = [str(h) for h in (net.hosts() if net.num_addresses > 2 else net)]
    profiles = load_profiles()
    found: list[dict[str, object]] = []

    async def go() -> None:
        sem = asyncio.Semaphore(concurrency)
        async with SnmpClient() as client:
            with Progress(transient=True, disable=as_json) as progress:
                task = progress.add_task(f"scanning {cidr}", total=len(hosts))

                async def one(host: str) -> None:
                    t = _target(host, host, port, community, v3_user, auth_key, priv_key, auth_proto,
                                priv_proto, timeout, retries, obj)
                    async with sem:
                        try:
                            p, sys_oid, descr = await identify(lambda oids: client.get(t, oids), profiles)
                            name_vb = await client.get(t, [(1, 3, 6, 1, 2, 1, 1, 5, 0)])
                            from netmgr.snmp.discover import text

                            found.append({"host": host, "port": port, "profile": p.name, "vendor": p.vendor,
                                          "sys_name": text(name_vb[0]), "sys_object_id": sys_oid,
                                          "sys_descr": descr[:80]})
                        except Exception:  # noqa: BLE001, S110 - silence is the common answer in a scan
                            pass
                        finally:
                            progress.advance(task)

                await asyncio.gather(*(one(h) for h in hosts))

    asyncio.run(go())
    found.sort(key=lambda f: ipaddress.ip_address(str(f["host"])))
    if add and found:
        body = [{"name": str(f["sys_name"] or f["host"]).replace(" ", "-")[:128], "host": f["host"],
                 "port": port, "zone": zone, "snmp": {"community": community} if community else {}}
                for f in found]
        import yaml

        r = obj.client().post("/api/v1/aps/import", {"format": "yaml", "text": yaml.safe_dump(body)})
        echo(f"added {r['created']}, updated {r['updated']} APs in {zone}", err=as_json)
    if as_json:
        echo_json(found)
    else:
        print_table(found, [("host", "host"), ("sys_name", "sysName"), ("profile", "profile"),
                            ("vendor", "vendor"), ("sys_descr", "sysDescr")],
                    title=f"{len(found)} agents answered in {cidr}")
