"""Output for people, one convention for every command (issue 13).

Values follow :mod:`netmgr.humanize`: times in the daemon's zone (``CliContext.tz``, asked of
the API the command talks to), named once under the output; human units and words; zones by
display name. Tables fit the terminal (100 columns when the output is not one, or ``COLUMNS``):
columns are left out, never headers cut; ``--wide`` shows them all. ``--json`` is the machine
output, exact values, and does not change with any of this.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Literal

import click

from netmgr.cli.context import CliContext, echo, echo_json, json_option, pass_ctx
from netmgr.humanize import times_in
from netmgr.text import safe_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# A column is (key, header) or (key, header, priority): "essential" columns always show, the
# others ("fits", the default) while the table fits the terminal with them (the last left out
# first), "wide" ones only with --wide.
Priority = Literal["essential", "fits", "wide"]
Column = tuple[str, str] | tuple[str, str, Priority]
DEFAULT_WIDTH = 100  # when the output is not a terminal and COLUMNS is not set
CELL_MAX = 24  # a longer cell wraps within its column (unless --wide)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """``data`` as JSON for machines (``--json``: exact values), else ``human(data)`` for people."""
    if as_json:
        echo_json(data)
    else:
        human(data)


def print_fields(fields: Sequence[tuple[str, Any]], width: int = 12) -> None:
    """People output: ``label  value`` lines, the values aligned and wrapped at the terminal's
    width under themselves; empty values are left out."""
    import textwrap

    wrap = textwrap.TextWrapper(width=terminal_width(), subsequent_indent=" " * (width + 1),
                                break_long_words=False, break_on_hyphens=False)
    for label, value in fields:
        if value is not None and value != "":
            echo(wrap.fill(f"{label:{width}} {value}"))


def print_times_in(tz: tzinfo) -> None:
    """The line that names the zone of the times above it (once per output)."""
    echo(f"({times_in(tz)})")


def terminal_width() -> int:
    """The width tables fit: ``COLUMNS``, else the terminal's, else 100 (a pipe, a file)."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def console(width: int | None = None) -> Console:
    """A rich console on stdout, ``width`` (default :func:`terminal_width`) columns wide."""
    from rich.console import Console

    return Console(width=width or terminal_width(), highlight=False)


def _columns(columns: Sequence[Column]) -> list[tuple[str, str, str]]:
    return [(c[0], c[1], c[2] if len(c) > 2 else "fits") for c in columns]  # type: ignore[misc]


def _table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, str]], title: str | None,
           caption: str | None, wide: bool = False, whole_headers: bool = True) -> Table:
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, caption=caption, show_lines=False, header_style="bold")
    for _key, header, _prio in columns:  # a header is never cut or wrapped (while they fit)
        table.add_column(header, min_width=cell_len(header) if whole_headers else None, overflow="fold",
                         max_width=None if wide else max(CELL_MAX, cell_len(header)))
    for row in rows:
        table.add_row(*(Text("" if row.get(k) is None else safe_text(row.get(k), keep_newlines=False))
                        for k, _, _ in columns))
    return table


def natural_width(table: Table, least: bool = False) -> int:
    """How many columns ``table`` takes when nothing constrains it (``least``: at the least)."""
    from rich.measure import Measurement

    probe = console(10_000)
    m = Measurement.get(probe, probe.options, table)
    return m.minimum if least else m.maximum


def fitting_columns(rows: list[dict[str, Any]], columns: Sequence[Column], width: int,
                    wide: bool = False) -> list[tuple[str, str, str]]:
    """The columns a table of ``rows`` shows at ``width``: every one with ``wide``; else the
    essential ones and the "fits" ones, leaving those out from the last until the table fits
    (long cells wrapping at CELL_MAX)."""
    cols = _columns(columns)
    if wide:
        return cols
    shown = [c for c in cols if c[2] != "wide"]
    while True:
        optional = [c for c in shown if c[2] != "essential"]
        if not optional or natural_width(_table(rows, shown, None, None)) <= width:
            return shown
        shown.remove(optional[-1])


def print_table(rows: list[dict[str, Any]], columns: Sequence[Column], title: str | None = None, *,
                wide: bool = False, tz: tzinfo | None = None) -> None:
    """People output: a rich table of ``rows`` with (key, header[, priority]) ``columns`` that
    fits the terminal: columns are left out (see :func:`fitting_columns`) rather than headers
    cut, and a line names them; ``wide`` shows every column, as wide as they need. ``tz``: the
    table has times, named under it. Cells are plain text (no rich markup: a name like
    ``[red]x`` prints as typed) with controls escaped."""
    width = terminal_width()
    shown = fitting_columns(rows, columns, width, wide)
    caption = times_in(tz) if tz is not None and rows else None
    table = _table(rows, shown, title, caption, wide)
    if not wide and natural_width(table, least=True) > width:  # a terminal narrower than the
        table = _table(rows, shown, title, caption, whole_headers=False)  # essentials: rich wraps
    console(max(width, natural_width(table)) if wide else width).print(table)
    keys = {k for k, _, _ in shown}
    hidden = [c[1] for c in columns if c[0] not in keys]
    if not rows:
        click.echo("(none)")
    elif hidden:
        ctx = click.get_current_context(silent=True)
        echo(f"(--wide adds {', '.join(hidden)})" if ctx is not None and "wide" in ctx.params
             else f"(left out at this width: {', '.join(hidden)}; --json has every field)")


def wide_option(f: Any) -> Any:
    """``--wide``: every column of the table, however wide it gets."""
    return click.option("--wide", is_flag=True, help="Every column, however wide the table gets.")(f)


def with_history(collection: str, argument: str, detail: str, what: str) -> Callable[[Any], Any]:
    """The command of ``ap show`` and ``speaker show``: ARGUMENT, ``--history N``,
    ``--history-minutes M`` and ``--json``; it gets ``/api/v1/<collection>/<id><detail>`` with the
    recent rows of ``.../<id>/history`` as its ``history``, prints it as JSON or hands it to the
    decorated ``render(obj, data)``, whose docstring is the command's help."""
    def wrap(render: Callable[[CliContext, dict[str, Any]], None]) -> Any:
        @click.argument(argument)
        @click.option("--history", "history_rows", type=click.IntRange(0, 10_000), default=5,
                      show_default=True, help=f"Recent {what} to show (0: none).")
        @click.option("--history-minutes", type=click.IntRange(1, 10_080), default=60, show_default=True)
        @json_option
        @pass_ctx
        @functools.wraps(render)
        def command(obj: CliContext, history_rows: int, history_minutes: int, as_json: bool,
                    **ident: str) -> None:
            client = obj.client()
            base = f"/api/v1/{collection}/{ident[argument]}"
            r = client.get(base + detail)
            r["history"] = client.get(f"{base}/history", minutes=history_minutes,
                                      limit=history_rows)["items"] if history_rows else []
            emit(r, as_json, lambda data: render(obj, data))
        return command
    return wrap


def filtered_list(path: str, statuses: list[str], status_help: str | None = None) -> Callable[[Any], Any]:
    """The command of ``ap list`` and ``speaker list``: ``--zone``, ``--tag`` and ``--status``
    filters, ``--wide`` and ``--json``; it gets ``path``'s items, prints them as JSON or hands
    them to the decorated ``render(obj, items, wide)``, whose docstring is the command's help."""
    def wrap(render: Callable[[CliContext, list[dict[str, Any]], bool], None]) -> Any:
        @click.option("--zone", help="Only this zone and below.")
        @click.option("--status", type=click.Choice(statuses), help=status_help)
        @click.option("--tag", help="key or key=value")
        @wide_option
        @json_option
        @pass_ctx
        @functools.wraps(render)
        def command(obj: CliContext, zone: str | None, status: str | None, tag: str | None, wide: bool,
                    as_json: bool) -> None:
            items = obj.client().get(path, zone=zone, tag=tag, status=status)["items"]
            emit(items, as_json, lambda data: render(obj, data, wide))
        return command
    return wrap
