"""The package's architecture as checked contracts: layers, no import circles, no private imports.

The layers are declared once, as import-linter contracts in pyproject.toml; this test runs them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_automl"
SUBPACKAGES = ["backbones", "cli", "config", "data", "modeling", "pipeline", "planning", "report", "runtime",
               "search", "serving", "training", "weights"]


def test_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over the direct imports between `modules`: the components of size > 1."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node) & modules:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_between_modules():
    graph = grimp.build_graph("resnet_automl")
    # a package's __init__ re-exports its modules: only modules (leaves) can form a circle of their own
    modules = {m for m in graph.modules if m.startswith("resnet_automl.") and not graph.find_children(m)}
    assert _strongly_connected(graph, modules) == []


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("resnet_automl"):
                offenders += [f"{path.relative_to(PACKAGE)}: {node.module}.{alias.name}" for alias in node.names
                              if alias.name.startswith("_") and alias.name != "__version__"]
    assert offenders == []


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_subpackage_says_what_it_owns_and_what_it_may_import(name):
    doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
    assert "May import:" in doc and "Entry points:" in doc, f"resnet_automl/{name}/__init__.py"
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()) == sorted(SUBPACKAGES)


def test_ruff_finds_nothing():
    """pyflakes, bugbear, import order, complexity and size limits as configured in pyproject.toml."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "resnet_automl", "tests", "benchmarks"], cwd=PACKAGE.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_number_of_stages_is_one_fact():
    from resnet_automl.backbones.registry import STAGES
    from resnet_automl.config.options import NUM_STAGES

    assert len(STAGES) == NUM_STAGES


#: The run folder's and the model folder's file names: each has one home (`runtime/run_folder.py`).
ONE_HOME_NAMES = ("run.json", "model.weights.h5", "split.json", "labels.txt", "thresholds.json")


def _docstring_nodes(tree: ast.AST) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literal_spellings(root: Path, names: tuple = ONE_HOME_NAMES) -> dict:
    """name -> list of "file:line" of the string literals (docstrings aside) under `root` that spell it."""
    places = {name: [] for name in names}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for name in names:
                    if name in node.value:
                        places[name].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return places


def test_each_run_folder_file_name_is_spelled_once():
    for name, places in literal_spellings(PACKAGE).items():
        assert len(places) <= 1, f"{name!r} is spelled in {places}; ask `runtime.run_folder` instead"


def test_the_spelling_check_finds_a_second_spelling(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text('"""Reads run.json."""\nFILE = "run.json"\n')
    (package / "b.py").write_text('def f(out):\n    """Doc: run.json."""\n    return out + f"/{1}/run.json"\n')
    assert len(literal_spellings(package)["run.json"]) == 2


def private_members_used_not_defined(module: Path) -> set:
    """Names `self._x` a module reads that it neither assigns nor defines itself: a library's private members."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    used, defined = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            (defined if isinstance(node.ctx, ast.Store) else used).add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_"):
            defined.add(node.name)
    return used - defined


def test_the_search_uses_keras_tuners_public_api_only():
    for module in sorted((PACKAGE / "search").glob("*.py")):
        assert not private_members_used_not_defined(module), (module.name, private_members_used_not_defined(module))


def test_the_private_member_check_finds_one(tmp_path):
    module = tmp_path / "oracle.py"
    module.write_text("class O(Base):\n    def f(self):\n        self._mine = 1\n"
                      "        return self._duplicate(self._mine)\n")
    assert private_members_used_not_defined(module) == {"_duplicate"}
