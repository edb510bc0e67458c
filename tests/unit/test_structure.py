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


def test_every_service_fills_only_the_figures_declared_for_it():
    from netmgr.radio.mqtt import Broker
    from netmgr.radio.service import RadioService
    from netmgr.runtime import Service
    from netmgr.snmp.poller import PollerService
    from netmgr.telemetry.points import INTERNAL_METRICS, SCHEMA

    assert SCHEMA["netmgr"] == {f: kind for f, (_, kind, _) in INTERNAL_METRICS.items()}
    assert all(help_ for _, _, help_ in INTERNAL_METRICS.values())
    declared = {c: {f for f, (comp, _, _) in INTERNAL_METRICS.items() if comp == c} for c in ("radio", "poller")}
    assert set(RadioService.standalone(Broker(port=1)).stats_fields()) == declared["radio"]
    poller = PollerService.__new__(PollerService)  # its figures from health(), before any poll
    poller.health = lambda: {}  # type: ignore[method-assign]
    assert set(PollerService.stats_fields(poller)) == declared["poller"]
    assert Service.stats_fields(Service.__new__(Service)) == {}


# Functions allowed above radon grade C, each with its reason (issue 13: "list any exception").
COMPLEXITY_EXCEPTIONS = {
    "netmgr/telemetry/lineproto.py:Encoder.line": "the per-point encoder, one pass with no calls per "
    "field: every point of every poll and node goes through it (bench/telemetry measures it)",
    "netmgr/snmp/ber.py:_decode_varbinds": "the per-packet BER decoder's inner loop, one pass over the "
    "bytes with the tag cases inline (bench/snmp_poll measures it against snmp_exporter)",
}


def _functions(blocks, prefix=""):
    for b in blocks:
        name = f"{b.classname}.{b.name}" if getattr(b, "classname", None) else b.name
        yield prefix + name, b
        yield from _functions(getattr(b, "closures", []), prefix + name + ".")


def test_every_function_is_radon_c_or_better():
    from radon.complexity import cc_rank, cc_visit

    too_complex, stale = [], set(COMPLEXITY_EXCEPTIONS)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name, block in _functions(b for b in cc_visit(path.read_text(encoding="utf-8"))
                                      if type(b).__name__ == "Function"):
            key = f"{rel}:{name}"
            if cc_rank(block.complexity) in "DEF":
                if key in COMPLEXITY_EXCEPTIONS:
                    stale.discard(key)
                else:
                    too_complex.append(f"{key}:{block.lineno} {cc_rank(block.complexity)} ({block.complexity})")
    assert not too_complex, "split these (or list one in COMPLEXITY_EXCEPTIONS with its reason):\n" + \
        "\n".join(too_complex)
    assert not stale, f"exceptions that are no longer needed: {sorted(stale)}"


def test_what_the_benchmarks_import_from_netmgr_exists():
    """bench/ is not run by the suite, and imports inside its functions: a moved name would only
    fail when someone measures. Every ``from netmgr... import name`` there must resolve."""
    import importlib

    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netmgr"):
                mod = importlib.import_module(node.module)
                missing += [f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names
                            if not hasattr(mod, a.name) and not (
                                hasattr(mod, "__path__") and importlib.util.find_spec(f"{node.module}.{a.name}"))]
    assert not missing, missing
