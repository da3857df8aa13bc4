"""The rule engine's modules import each other without a circle (base <- rule types <- registry <- engine)."""

from __future__ import annotations

import ast
from pathlib import Path

import alarms
from tests.test_imports import cycle

ALARMS = Path(alarms.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Every `alarms.*` module a file imports, also under TYPE_CHECKING and inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alarms."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("alarms."))
    return found


def test_the_alarms_package_has_no_importcycle() -> None:
    graph = {f"alarms.{p.stem}": _imports(p) for p in ALARMS.glob("*.py") if p.stem != "__init__"}
    assert "alarms.engine" in graph
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_the_cycle_check_finds_a_circle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
