"""``netmgr run``."""

from __future__ import annotations

import asyncio
import sys

import click

from netmgr.cli.context import CliContext, pass_ctx


@click.command()
@pass_ctx
def run(obj: CliContext) -> None:
    """Run the daemon in the foreground (systemd: Type=notify).

    SIGTERM drains and exits 0; SIGHUP reloads the config and the inventory.
    """
    from netmgr.config import find_config
    from netmgr.daemon import Daemon
    from netmgr.logs import setup_logging

    settings = obj.settings()  # a bad config exits 2 before anything starts
    setup_logging("debug" if obj.debug else settings.daemon.log_level)
    daemon = Daemon(settings, find_config(obj.config_path))
    sys.exit(asyncio.run(daemon.run()))
