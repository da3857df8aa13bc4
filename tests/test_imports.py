"""The house's imports run one way (issue 23): no circle anywhere in hub/, adapters/ and alarms/ (lazy imports
inside functions and imports for type checking count), nothing imports the command line, the web apps are
imported by the hub's wiring alone, and the pure cores import nothing of hub/ but the model."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "adapters", "alarms")


def _module_names() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _module_names()


def _owner(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) belongs to."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str) -> set[str]:
    """Our modules `name` imports (at the top, inside a function, or for type checking)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target.split(".")[0] in PACKAGES and (owner := _owner(target)) is not None and owner != name:
                found.add(owner)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the path around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_no_import_circle_anywhere_in_the_house() -> None:
    assert len(GRAPH) > 150
    assert cycle(GRAPH) is None, " -> ".join(cycle(GRAPH) or [])


def test_the_circle_check_finds_a_circle_through_a_package() -> None:
    assert cycle({"a": {"a.b"}, "a.b": {"a"}}) == ["a", "a.b", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_imports_the_command_line() -> None:
    assert sorted(n for n, deps in GRAPH.items() if "hub.cli" in deps) == []


def test_the_web_apps_are_imported_by_the_wiring_alone() -> None:
    outside = sorted(
        n for n, deps in GRAPH.items() if not n.startswith("hub.web") and any(d.startswith("hub.web") for d in deps)
    )
    assert outside == ["hub.app"]


def test_the_pure_cores_import_nothing_of_the_hub_but_the_model() -> None:
    leaks = {
        n: sorted(d for d in deps if d.startswith("hub") and d != "hub.model")
        for n, deps in GRAPH.items()
        if n.startswith(("adapters", "alarms"))
    }
    assert {n: d for n, d in leaks.items() if d} == {}


# The floors of the house, lowest first (docs/architecture.md draws them): a package imports only from floors below
# its own, so none runs back up and two packages on one floor know nothing of each other.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("hub.model",),
    ("hub.settings", "hub.metrics", "hub.texts", "adapters", "alarms"),
    ("hub.runtime", "hub.people"),
    ("hub.store",),
    (
        "hub.intake",
        "hub.notify",
        "hub.recovery",
        "hub.devices",
        "hub.followup",
        "hub.relatives",
        "hub.checkins",
        "hub.scaip",
    ),
    ("hub.desk", "hub.vendor", "hub.simulation"),
    ("hub.supervision", "hub.ownership"),
    ("hub.web",),
    ("hub.app",),
    ("hub.cli",),
)
FLOOR_OF = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] != "hub" or len(parts) == 1 else f"hub.{parts[1]}"


def test_every_package_stands_on_a_floor() -> None:
    assert sorted({package_of(n) for n in GRAPH} - set(FLOOR_OF) - {"hub"}) == []


def test_no_import_runs_up_or_sideways_between_packages() -> None:
    wrong = sorted(
        f"{name} -> {dep}"
        for name, deps in GRAPH.items()
        for dep in deps
        if package_of(name) != package_of(dep)
        and package_of(name) != "hub"
        and FLOOR_OF[package_of(name)] <= FLOOR_OF[package_of(dep)]
    )
    assert wrong == []
