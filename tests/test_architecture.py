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
