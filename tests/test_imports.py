"""The package's layout: no module imports one that imports it back (counting imports
inside functions), and the modules that answer a config typo import neither torch nor
Lightning, so the answer comes before either is loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Run before torch: composition, the schema check and the command line that calls them.
TORCH_FREE = (
    "config",
    "schema",
    "trust",
    "devices",
    "check",
    "rundirs",
    "distributed",
    "cli",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "litlab").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(tree: ast.AST, known: dict[str, Path]) -> set[str]:
    """The litlab modules a module imports anywhere in it but under `if __name__ ==
    "__main__":` (run as a script, the file is `__main__`, not the module, so it closes
    no circle) and `if TYPE_CHECKING:` (never run)."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "__name__ == '__main__'",
            "TYPE_CHECKING",
        ):
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in known else node.module for n in names]
        found |= {n for n in names if n in known}
        found |= imported(node, known)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {name: imported(ast.parse(path.read_text()), known) for name, path in known.items()}
    return {name: targets - {name, "litlab"} for name, targets in edges.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the modules along it, or None."""
    state: dict[str, str] = {}  # module -> "open" while on the path, "done" after
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name], _ = "open", path.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[name], _ = "done", path.pop()
        return None

    for name in sorted(edges):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_module_is_imported_back():
    found = cycle(graph())
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_the_cycle_finder_names_the_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle(edges) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", TORCH_FREE)
def test_answers_a_typo_without_torch(name):
    code = f"import sys, litlab.{name}; print(sorted({{'torch', 'lightning'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", f"litlab.{name} imports {done.stdout.strip()}"
