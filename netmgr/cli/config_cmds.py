"""``netmgr config check|show``."""

from __future__ import annotations

import click

from netmgr.cli.context import CliContext, echo, echo_json, pass_ctx


@click.group()
def config() -> None:
    """Check and show the configuration."""


@config.command()
@pass_ctx
def check(obj: CliContext) -> None:
    """Validate the config: exit 0 if good, 2 listing every problem if not."""
    from netmgr.config import find_config

    obj.settings()
    path = find_config(obj.config_path)
    echo(f"{path or '(no config file: defaults and environment)'}: ok")


@config.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@pass_ctx
def show(obj: CliContext, as_json: bool) -> None:
    """Print the effective config with every secret redacted."""
    from netmgr.config import redacted_dict

    data = redacted_dict(obj.settings())
    if as_json:
        echo_json(data)
        return
    import tomli_w

    def strip_none(d: dict) -> dict:
        return {k: strip_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    echo(tomli_w.dumps(strip_none(data)), nl=False)
