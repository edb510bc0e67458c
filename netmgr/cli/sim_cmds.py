"""``netmgr sim``: simulators for tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from netmgr.errors import UsageError


@click.group()
def sim() -> None:
    """Simulators: speaker nodes (MQTT)."""


def _nodes(count: int, zones: tuple[str, ...], prefix: str, inventory: Path | None) -> list[tuple[str, str]]:
    if inventory is not None:
        from netmgr.inventory import validate_records
        from netmgr.records import parse_records

        text = inventory.read_text(encoding="utf-8")
        fmt = "csv" if inventory.suffix.lower() == ".csv" else "yaml"
        rows = validate_records(parse_records(text, fmt, str(inventory)), "speaker")
        return [(item.id, item.zone) for _, item in rows]
    if not zones:
        raise UsageError("give --zone PATH (one or more) or --inventory FILE")
    from netmgr.zones import validate_path

    for z in zones:
        try:
            validate_path(z)
        except ValueError as e:
            raise UsageError(f"--zone {z}: {e}") from None
    return [(f"{prefix}{i:04d}", zones[i % len(zones)]) for i in range(count)]


@sim.command("speakers")
@click.option("--count", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="Nodes to simulate (ids PREFIX0000, PREFIX0001, ...; spread over the zones in turn).")
@click.option("--zone", "zones", multiple=True, help="Zone path of the nodes (repeat for several).")
@click.option("--inventory", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Speakers CSV/YAML (as for `speaker import`) instead of --count/--zone.")
@click.option("--prefix", default="sim-", show_default=True, help="Node id prefix with --count.")
@click.option("--broker", required=True, help="mqtt://host:port or mqtts://host:port (user:pass@ allowed).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA certificate for mqtts://.")
@click.option("--protocol", type=click.Choice(["3.1.1", "5"]), default="3.1.1", show_default=True)
@click.option("--credentials", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON object node id -> MQTT password (from `speaker credentials --json`).")
@click.option("--telemetry-interval", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True)
@click.option("--loss", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Probability that a message to or from a node is lost.")
@click.option("--latency-ms", type=click.FloatRange(0, 60_000), default=0.0, show_default=True,
              help="Mean delay before a node acts on a command.")
@click.option("--offline-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of nodes that stay disconnected.")
@click.option("--skew", type=click.FloatRange(0, 86400), default=0.0, show_default=True,
              help="Each node's clock is off by up to this many seconds.")
@click.option("--duration", type=click.FloatRange(0, None), help="Stop after this many seconds.")
@click.option("--seed", type=int)
def speakers(count: int, zones: tuple[str, ...], inventory: Path | None, prefix: str, broker: str,
             ca_file: Path | None, protocol: str, credentials: Path | None, telemetry_interval: float,
             loss: float, latency_ms: float, offline_fraction: float, skew: float,
             duration: float | None, seed: int | None) -> None:
    """Run simulated speaker nodes that speak docs/protocol.md.

    Prints JSON lines (started, connected, stopped with counters). Steer it with JSON lines
    on stdin: {"offline": [ids]}, {"online": [ids]}, {"offline_fraction": 0.1}, {"playlog": true}.
    """
    from netmgr.radio.mqtt import from_url
    from netmgr.sim.speakers import SimConfig, run_cli

    b = from_url(broker, ca_file=ca_file, protocol=protocol)
    passwords = None
    if credentials is not None:
        try:
            passwords = json.loads(credentials.read_text(encoding="utf-8"))
        except ValueError as e:
            raise UsageError(f"{credentials}: not a JSON object of node id -> password ({e})") from None
        if not isinstance(passwords, dict):
            raise UsageError(f"{credentials}: not a JSON object of node id -> password")
    cfg = SimConfig(telemetry_interval=telemetry_interval, loss=loss, latency_ms=latency_ms,
                    offline_fraction=offline_fraction, skew_s=skew, protocol=protocol, seed=seed)
    nodes = _nodes(count, zones, prefix, inventory)
    try:
        asyncio.run(run_cli(b, nodes, cfg, passwords, duration))
    except KeyboardInterrupt:
        pass
