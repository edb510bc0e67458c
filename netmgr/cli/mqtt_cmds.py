"""``netmgr mqtt``: the broker's side of node identities."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from netmgr.cli.context import CliContext, echo, pass_ctx


@click.group()
def mqtt() -> None:
    """mosquitto password and ACL files."""


def _write_private(path: Path, text: str) -> None:
    """Write atomically (temp file + rename), mode 0640: the broker reads it, others may not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@mqtt.command("render")
@click.option("--passwd", "passwd_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="mosquitto password_file to write.")
@click.option("--acl", "acl_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="mosquitto acl_file to write.")
@pass_ctx
def render(obj: CliContext, passwd_file: Path, acl_file: Path) -> None:
    """Write mosquitto's password and ACL files from the inventory (admins only).

    Each node may write only its own status, telemetry and reply topics and read only its
    own cmd and schedule topics and its zones' cmd topics; the daemon's identity ([mqtt]
    username) may do everything under netmgr/v1/. Reload mosquitto afterwards
    (systemctl reload mosquitto, or SIGHUP).
    """
    r = obj.client().get("/api/v1/mqtt/render")
    _write_private(passwd_file, r["passwd"])
    _write_private(acl_file, r["acl"])
    echo(f"wrote {passwd_file} and {acl_file}: {r['nodes']} nodes"
               + (f", daemon user {r['daemon_user']}" if r.get("daemon_user") else ""))
    missing = r.get("without_credentials") or []
    if missing:
        echo(f"{len(missing)} speakers have no credentials yet (e.g. {missing[0]}): "
                   "`netmgr speaker credentials ID` creates them")
