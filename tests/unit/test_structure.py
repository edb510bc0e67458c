"""The house rules a newcomer can rely on, checked (issue 13): the layers and no import cycles
(import-linter contracts in pyproject.toml, every import counted: type-only and function-level
ones too) and one exception module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "netmgr"


def test_layers_hold_and_nothing_imports_in_a_cycle():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def _classes(path: Path) -> list[ast.ClassDef]:
    return [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)]


def _base_names(cls: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in cls.bases}


def test_every_exception_is_declared_in_errors_py():
    declared = {c.name for c in _classes(PACKAGE / "errors.py")}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for c in _classes(path):
            bases = _base_names(c)
            if bases & (declared | {"Exception", "ValueError", "RuntimeError", "BaseException", "OSError"}):
                elsewhere.append(f"{path.relative_to(ROOT)}:{c.lineno} {c.name}({', '.join(sorted(bases))})")
    assert not elsewhere, "exceptions belong in netmgr/errors.py:\n" + "\n".join(elsewhere)


def test_every_declared_exception_derives_from_netmgr_error_and_is_used():
    import netmgr.errors as errors

    classes = {c.name: getattr(errors, c.name) for c in _classes(PACKAGE / "errors.py")}
    assert all(issubclass(cls, errors.NetmgrError) for cls in classes.values()), classes
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py") if p.name != "errors.py")
    own = (PACKAGE / "errors.py").read_text(encoding="utf-8")
    unused = [name for name in classes
              if name not in sources and own.count(f"({name}") + own.count(f", {name})") == 0]
    assert not unused, f"declared but never raised, caught or subclassed: {unused}"


def test_statuses_and_exit_codes_are_declared_once():
    from netmgr import errors

    assert errors.MissingReference.http_status == 409 and errors.TooLarge.http_status == 413
    assert errors.SnmpTimeout.http_status == 503 and isinstance(errors.SnmpTimeout("ap", 1, 1), errors.Retryable)
    assert isinstance(errors.TimeParseError("x"), ValueError)  # pydantic validators report it
    assert errors.ApiError(422, "x").exit_code == 2 and errors.ApiError(404, "x").exit_code == 1
