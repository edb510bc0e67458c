"""``netmgr demo``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click


@click.command()
@click.option("--duration", type=click.FloatRange(min=1), help="Stop after this many seconds (exit 0).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's state here (default: a temporary folder, removed at the end).")
@click.option("--api-port", type=click.IntRange(0, 65535), default=8470, show_default=True,
              help="API port (another free port is used if taken).")
@click.option("--influxdb-url", help="Also write telemetry to this InfluxDB v2 write API or VictoriaMetrics "
              "(e.g. http://127.0.0.1:8428); the SQLite ring is filled either way.")
@click.option("--verbose", is_flag=True, help="Every 10 s, every service's full counters instead of "
              "the compact status.")
@click.pass_obj
def demo(obj: object, duration: float | None, state_dir: Path | None, api_port: int,
         influxdb_url: str | None, verbose: bool) -> None:
    """Run the whole system with zero external services and simulated devices."""
    from netmgr.demo import run_demo
    from netmgr.logs import setup_logging

    setup_logging("debug" if getattr(obj, "debug", False) else "warning")
    try:
        code = asyncio.run(run_demo(duration, state_dir, api_port, influxdb_url=influxdb_url,
                                        verbose=verbose))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
