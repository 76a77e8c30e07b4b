"""The shape of the code, checked on the import graph (no database, no clock):
casework is the lower layer, and no two modules import each other, directly or round a loop.

- `mailflow/casework/` imports nothing from `inbound/`, `jobs/`, `reports/`, `cli`, `serve` or
  `app`, and from `outbound/` only the one door (`outbound/mail.py`);
- no module-level import cycle exists anywhere in the package (imports under
  `if TYPE_CHECKING:` are for type checkers only and are not followed).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mailflow"
FORBIDDEN = ("mailflow.inbound", "mailflow.jobs", "mailflow.reports", "mailflow.cli",
             "mailflow.serve", "mailflow.app")
DOOR = "mailflow.outbound.mail"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _target(base: str, name: str | None) -> str:
    full = f"{base}.{name}" if name else base
    return full if full in MODULES else base


def _imports(path: Path, *, module_level: bool) -> set[str]:
    """The package's modules imported by `path`; module_level: not inside functions nor under
    TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if module_level and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(
                    child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("mailflow"))
            elif isinstance(child, ast.ImportFrom) and child.module and \
                    child.module.startswith("mailflow"):
                found.update(_target(child.module, a.name) for a in child.names)
            visit(child)

    visit(tree)
    return found


def test_casework_is_the_lower_layer() -> None:
    wrong = []
    for name, path in MODULES.items():
        if not name.startswith("mailflow.casework"):
            continue
        for imported in _imports(path, module_level=False):
            if imported.startswith(FORBIDDEN) or (
                    imported.startswith("mailflow.outbound") and imported != DOOR):
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {name: _imports(path, module_level=True) & MODULES.keys()
             for name, path in MODULES.items()}
    cycles, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []


def test_the_checks_see_the_package() -> None:
    """The graph is read at all: a check that reads nothing cannot fail."""
    assert "mailflow.casework.cases" in MODULES
    assert DOOR in _imports(MODULES["mailflow.casework.cases"], module_level=True)
