"""Where netmgr's data files are: the repo's devices/ in a checkout, else inside the wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def devices_dir() -> Path:
    """The devices/ folder (AP profiles, recordings, demo data)."""
    wheel = _PKG / "_data" / "devices"
    if wheel.is_dir():
        return wheel
    return _PKG.parent / "devices"
