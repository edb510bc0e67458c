"""The tests' own structure: helpers live in tests/support/ and nowhere else.

No module under tests/ imports a test module or a conftest (only pytest collects those), only
tests/conftest.py changes sys.path, and the waiting helpers (``until``, ``wait_for``) are
defined once, in tests/support/waiting.py, never again or under another module's name."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUPPORT = TESTS / "support"
WAITERS = {"until", "wait_for"}


def _forbidden(name: str) -> bool:
    return any(part.startswith(("test_", "conftest")) for part in name.split("."))


def _is_sys_path_change(node: ast.Call) -> bool:
    f = node.func
    return (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Attribute) and f.value.attr == "path"
            and isinstance(f.value.value, ast.Name) and f.value.value.id == "sys")


def problems(source: str, path: Path) -> list[str]:
    """What ``source`` (the module at ``path``) does against the rules above, one line each."""
    where = path.relative_to(TESTS.parent) if path.is_relative_to(TESTS.parent) else path
    in_support = path.is_relative_to(SUPPORT)
    out = []
    for node in ast.walk(ast.parse(source, str(path))):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{line}: imports {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module or '.'}.{a.name}" for a in node.names]
            if any(_forbidden(n) for n in names):
                out.append(f"{line}: imports from {'.' * node.level}{node.module or ''} "
                           f"({', '.join(a.name for a in node.names)})")
        elif isinstance(node, ast.Call) and _is_sys_path_change(node) and path != TESTS / "conftest.py":
            out.append(f"{line}: changes sys.path (tests/conftest.py puts tests/ on it, once)")
        elif in_support:
            continue
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in WAITERS:
            out.append(f"{line}: defines {node.name}() (import it from support.waiting)")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [f"{line}: binds {t.id} (import it from support.waiting)"
                    for t in targets if isinstance(t, ast.Name) and t.id in WAITERS]
    return out


def modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_test_module_imports_another_and_one_until() -> None:
    found = [msg for path in modules() for msg in problems(path.read_text(encoding="utf-8"), path)]
    assert found == [], "\n".join(found)


def test_the_waiting_helpers_are_in_support() -> None:
    tree = ast.parse((SUPPORT / "waiting.py").read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert defined >= WAITERS
    walked = {p.relative_to(TESTS).parts[0] for p in modules()}
    assert walked >= {"conftest.py", "unit", "integration", "e2e", "support"}, walked  # the whole tree


def test_the_check_finds_what_it_forbids() -> None:
    bad = TESTS / "e2e" / "test_example.py"
    source = (
        "import sys\n"
        "from test_broadcast import cli\n"
        "import conftest\n"
        "from e2e import test_broadcast\n"
        "def f():\n"
        "    sys.path.insert(0, 'tests/e2e')\n"
        "    import test_radio as r\n"
        "async def until(fn, timeout, what):\n"
        "    pass\n"
        "class Listener:\n"
        "    def wait_for(self, pred):\n"
        "        pass\n"
        "until = None\n"
        "from support.waiting import until, wait_for\n"
        "from support import services\n"
    )
    found = problems(source, bad)
    assert sorted(int(msg.split(": ", 1)[0].rsplit(":", 1)[1]) for msg in found) == [
        2, 3, 4, 6, 7, 8, 11, 13], found
    # The same definitions are where they belong in tests/support/.
    assert problems("async def until(fn, timeout, what):\n    pass\n", SUPPORT / "waiting.py") == []
