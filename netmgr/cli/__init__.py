"""The ``netmgr`` command line.

Commands are imported only when invoked (``LazyGroup``), so ``netmgr --help``
stays fast: no SQLAlchemy, FastAPI or pysnmp at import time.

Exit codes: 0 ok, 1 failed, 2 usage or config error. Errors print as one line
``netmgr: error: ...``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from netmgr import __version__
from netmgr.cli.context import echo

# name -> "module:attribute"; each module is imported only when its command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("netmgr.cli.daemon_cmds:run", "Run the daemon (poller, radio, scheduler, telemetry, API)."),
    "demo": ("netmgr.cli.demo:demo", "Run a zero-setup demo: embedded broker, simulated devices."),
    "config": ("netmgr.cli.config_cmds:config", "Check and show the configuration."),
    "db": ("netmgr.cli.db_cmds:db", "Manage the state store (migrations)."),
    "login": ("netmgr.cli.auth_cmds:login", "Save a server URL and token for later commands."),
    "user": ("netmgr.cli.auth_cmds:user", "Create and list API users (local, needs the state store)."),
    "audit": ("netmgr.cli.audit_cmds:audit", "Read the audit log."),
    "zone": ("netmgr.cli.zone_cmds:zone", "Manage the zone tree (province/district/commune/village)."),
    "ap": ("netmgr.cli.ap_cmds:ap", "Wi-Fi access points: inventory, one-shot poll, discovery."),
    "speaker": ("netmgr.cli.speaker_cmds:speaker", "Smart-radio speaker nodes."),
    "mqtt": ("netmgr.cli.mqtt_cmds:mqtt", "Render mosquitto password and ACL files."),
    "broadcast": ("netmgr.cli.broadcast_cmds:broadcast", "Schedule and report broadcasts."),
    "media": ("netmgr.cli.media_cmds:media", "Audio files for broadcasts."),
    "sim": ("netmgr.cli.sim_cmds:sim", "Simulators: speaker nodes, AP fleets."),
    "grafana": ("netmgr.cli.grafana_cmds:grafana", "Export and push Grafana dashboards and alerts."),
}


def _available(name: str) -> bool:
    mod = COMMANDS[name][0].split(":")[0]
    return importlib.util.find_spec(mod) is not None


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        target, _help = COMMANDS[cmd_name]
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netmgr")
@click.option(
    "--config",
    "config_path",
    envvar="NETMGR_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (default /etc/netmgr/netmgr.toml, else ./netmgr.toml).",
)
@click.option(
    "--server", envvar="NETMGR_SERVER", help="API URL (default: saved by login, else http://127.0.0.1:8470)."
)
@click.option("--token", envvar="NETMGR_TOKEN", help="API token (default: saved by login).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, server: str | None, token: str | None, debug: bool
) -> None:
    """netmgr: a province's smart Wi-Fi and smart radio from one daemon."""
    from netmgr.cli.context import CliContext

    ctx.obj = CliContext(config_path=config_path, server=server, token=token, debug=debug)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the CLI and turn errors into one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="netmgr", standalone_mode=False)
    except click.exceptions.Abort:
        echo("netmgr: aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the one place where every error becomes a line
        from netmgr.errors import NetmgrError

        if debug or os.environ.get("NETMGR_DEBUG"):
            import traceback

            traceback.print_exc()
        code = e.exit_code if isinstance(e, NetmgrError) else 1
        text = str(e) if isinstance(e, NetmgrError) else f"{type(e).__name__}: {e}"
        for line in text.splitlines() or [type(e).__name__]:
            echo(f"netmgr: error: {line}", err=True)
        if not isinstance(e, NetmgrError) and not debug:
            echo("netmgr: (run with --debug for the traceback)", err=True)
        sys.exit(code)
