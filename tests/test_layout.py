"""The package's shape, checked statically: no import cycle anywhere, config as a leaf, dependencies pointing one way.

Every ``import`` counts, at module level or inside a function: a function-level import that closes a circle is still a
circle, only deferred. Importing ``a.b.c`` also imports the packages ``a.b`` and ``a`` (their ``__init__``), except
those already being imported around the importer, so those edges count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "hf_transfer"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Which top-level parts may import which (recipes/cli → study → training → strategies/models/data/hub → config).
LOWER_LAYERS = {
    "config": set(),
    "exceptions": set(),
    "metric_names": set(),
    "run_record": set(),
    "arguments": {"exceptions"},  # the shared flag parser (HfArgumentParser with one-line errors)
    "_cache": {"exceptions"},
    "data": {"config", "exceptions", "_cache"},
    "models": {"config", "exceptions", "_cache"},
    "strategies": {"config", "exceptions", "models"},
    "recipe": {"config", "exceptions", "arguments", "data", "models", "strategies"},
    "hub": {"config", "exceptions", "data", "models", "strategies", "metric_names", "run_record"},
    "training": {
        "config",
        "exceptions",
        "_cache",
        "data",
        "models",
        "strategies",
        "hub",
        "recipe",
        "metric_names",
        "run_record",
    },
    "study": {
        "config",
        "exceptions",
        "data",
        "models",
        "strategies",
        "recipe",
        "training",
        "metric_names",
        "run_record",
    },
    "inference": {"config", "data", "models", "run_record"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported_modules(name: str) -> set[str]:
    """Every module of the package that importing ``name`` imports directly (function-level imports included)."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if is_package(name) else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    edges = set()
    own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
    for target in targets:
        if not target.startswith(PACKAGE):
            continue
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            prefix = ".".join(parts[:i])
            if prefix in MODULES and prefix not in own_ancestors:
                edges.add(prefix)
    return edges - {name}


GRAPH = {name: imported_modules(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return stack[stack.index(successor) :] + [successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_sees_modules_and_catches_a_cycle():
    assert len(MODULES) > 40 and "hf_transfer.training.prepare" in MODULES
    assert "hf_transfer.config" in GRAPH["hf_transfer.recipe"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_package():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_config_is_a_leaf():
    assert GRAPH["hf_transfer.config"] == set()


def part(module: str) -> str:
    return module.removeprefix(PACKAGE + ".").split(".")[0]


@pytest.mark.parametrize("layer", sorted(LOWER_LAYERS))
def test_dependencies_point_one_way(layer):
    allowed = LOWER_LAYERS[layer] | {layer}
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if part(module) == layer
        for target in targets
        if target != PACKAGE and part(target) not in allowed and not part(target).startswith(layer)
    }
    assert not wrong, sorted(wrong)
