"""The layering docs/architecture.md states, held by reading every module's imports.

A new import across a layer fails here, so the table in the doc is changed on purpose or not
at all: the control logic stays pure, production code never reaches the simulator, a simulated
chip never borrows its driver's encoding, and the integration never imports the agent.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

AGENT = REPO_ROOT / "edge_agent"
INTEGRATION = REPO_ROOT / "custom_components" / "sbms"

ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
COMPOSITION_ROOT = frozenset({"cli", "__main__"})  # may use everything
TABLE_ROW = re.compile(
    r"^\| `(?P<layer>[a-z0-9_]+)(?:/|\.py)` \|.*\| (?P<may>[^|]*) \|$", re.MULTILINE
)
NAME_IN_BACKTICKS = re.compile(r"`([a-z0-9_]+)[^`]*`")
# Pure and deterministic: no clock, no files, no threads, no logging, no randomness.
PURE_STDLIB = frozenset(
    {"__future__", "abc", "bisect", "collections", "dataclasses", "enum", "functools"}
    | {"itertools", "math", "operator", "statistics", "typing"}
)
# The MQTT package's pure modules may use these beyond PURE_STDLIB; only client.py connects.
MQTT_PURE_EXTRA = frozenset({"json", "re"})
MQTT_LINK = "client.py"
# Chips modelled on both sides: each side encodes the datasheet on its own.
CHIP_PAIRS = ("isl94203", "ina2xx", "mcp23008")
# What Home Assistant provides to every integration (the manifest requires nothing more).
INTEGRATION_LIBRARIES = frozenset({"homeassistant", "voluptuous"})


@dataclass(frozen=True)
class Import:
    module: Path
    name: str  # absolute dotted name; "." for a relative import
    line: int

    @property
    def top(self) -> str:
        return self.name.split(".")[0]

    @property
    def agent_package(self) -> str | None:
        """For `edge_agent.<package>...`, the package (or top-level module) it names."""
        parts = self.name.split(".")
        if parts[0] != "edge_agent":
            return None
        return parts[1] if len(parts) > 1 else ""

    def __str__(self) -> str:
        return f"{self.module.relative_to(REPO_ROOT)}:{self.line} imports {self.name}"


def _imports(root: Path) -> Iterator[Import]:
    """Every import in every module below root, also those inside functions."""
    for module in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    yield Import(module, ".", node.lineno)
                else:
                    yield Import(module, node.module or "", node.lineno)
                    # `from edge_agent import simulator` names the package in the alias
                    if node.module == "edge_agent":
                        for alias in node.names:
                            yield Import(module, f"edge_agent.{alias.name}", node.lineno)


def _layer(module: Path) -> str:
    relative = module.relative_to(AGENT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


@functools.cache
def _may_import() -> dict[str, frozenset[str]]:
    """The "may import" column of docs/architecture.md's layer table: for each layer, the
    agent's layers named in backticks (`x`, `x/`, `x.y`); libraries are plain text."""
    rows = {
        row["layer"]: frozenset(NAME_IN_BACKTICKS.findall(row["may"]))
        for row in TABLE_ROW.finditer(ARCHITECTURE.read_text(encoding="utf-8"))
    }
    return {layer: names for layer, names in rows.items() if layer not in COMPOSITION_ROOT}


def _layers_in_the_code() -> set[str]:
    layers = {p.name for p in AGENT.iterdir() if (p / "__init__.py").is_file()}
    return layers | {m.stem for m in AGENT.glob("*.py")} - COMPOSITION_ROOT - {"__init__"}


def test_every_agent_layer_has_a_row_in_the_table() -> None:
    assert set(_may_import()) == _layers_in_the_code()


def test_the_table_names_only_layers() -> None:
    layers = _layers_in_the_code()
    assert {layer: names - layers for layer, names in _may_import().items() if names - layers} == {}


def test_agent_packages_import_only_the_layers_the_table_allows() -> None:
    crossings = [
        str(found)
        for found in _imports(AGENT)
        if (layer := _layer(found.module)) not in COMPOSITION_ROOT
        and (target := found.agent_package) is not None
        and target not in ("", layer)
        and target not in _may_import()[layer]
    ]
    assert crossings == []


def test_production_code_does_not_know_the_simulator_exists() -> None:
    users = [
        str(found)
        for found in _imports(AGENT)
        if found.agent_package == "simulator" and _layer(found.module) not in {"simulator", "cli"}
    ]
    assert users == []


def test_control_logic_is_pure() -> None:
    impure = [
        str(found)
        for found in _imports(AGENT / "control")
        if found.agent_package is None and found.name != "." and found.top not in PURE_STDLIB
    ]
    assert impure == []


def test_the_mqtt_protocol_is_pure_and_only_the_link_connects() -> None:
    """mqtt/__init__.py says so: everything but client.py builds and judges messages without a
    socket, a file or a clock."""
    impure = [
        str(found)
        for found in _imports(AGENT / "mqtt")
        if found.module.name != MQTT_LINK
        and found.agent_package is None
        and found.name != "."
        and found.top not in PURE_STDLIB | MQTT_PURE_EXTRA
    ]
    assert impure == []


@pytest.mark.parametrize("package", ["control", "storage", "drivers"])
def test_lower_layers_need_only_the_standard_library(package: str) -> None:
    """gpiod is loaded on demand by drivers/gpio.py, so the drivers import without it."""
    third_party = [
        str(found)
        for found in _imports(AGENT / package)
        if found.name != "."
        and found.agent_package is None
        and found.top not in sys.stdlib_module_names
        and found.top != "__future__"
    ]
    assert third_party == []


@pytest.mark.parametrize("chip", CHIP_PAIRS)
def test_a_simulated_chip_does_not_borrow_its_drivers_encoding(chip: str) -> None:
    assert (AGENT / "drivers" / f"{chip}.py").is_file()
    simulated = AGENT / "simulator" / f"{chip}.py"
    borrowed = [
        str(found) for found in _imports(simulated) if found.name == f"edge_agent.drivers.{chip}"
    ]
    assert borrowed == []


def test_the_integration_ships_alone() -> None:
    """HACS installs custom_components/sbms by itself: only Home Assistant, what it ships, the
    standard library and the integration's own modules."""
    foreign = [
        str(found)
        for found in _imports(INTEGRATION)
        if found.name != "."
        and found.top not in sys.stdlib_module_names
        and found.top not in INTEGRATION_LIBRARIES
        and found.top != "__future__"
    ]
    assert foreign == []


def test_the_checks_see_a_crossing(tmp_path: Path) -> None:
    """The reader finds imports inside functions and in `from edge_agent import x` form."""
    module = tmp_path / "sample.py"
    module.write_text(
        "from edge_agent import simulator\n"
        "def f():\n"
        "    import time\n"
        "    from edge_agent.drivers.ina2xx import Ina228\n",
        encoding="utf-8",
    )
    names = [(found.name, found.line) for found in _imports(tmp_path)]
    assert names == [
        ("edge_agent", 1),
        ("edge_agent.simulator", 1),
        ("time", 3),
        ("edge_agent.drivers.ina2xx", 4),
    ]


def _top_level_names(module: Path) -> tuple[set[str], set[str]]:
    """The names a module defines at its top level, and those it imports."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            imported |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return defined, imported


def test_names_are_imported_from_where_they_live() -> None:
    """A module is not a re-export crutch: `from edge_agent.a.b import X` names the module
    that defines X (a package's `__init__.py` may hand names on on purpose)."""
    crutches = []
    for root in (AGENT, REPO_ROOT / "tests", REPO_ROOT / "bench"):
        for module in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                    "edge_agent."
                ):
                    continue
                assert node.module is not None
                source = REPO_ROOT / (node.module.replace(".", "/") + ".py")
                if not source.is_file():
                    continue  # a package: its __init__.py
                defined, imported = _top_level_names(source)
                crutches += [
                    f"{module.relative_to(REPO_ROOT)}:{node.lineno} imports {alias.name} "
                    f"from {node.module}, which only imports it"
                    for alias in node.names
                    if alias.name in imported - defined
                ]
    assert crutches == []


def _package_graph() -> dict[str, dict[str, Import]]:
    """Agent package -> the packages it imports, each with one import that shows it."""
    graph: dict[str, dict[str, Import]] = {}
    for found in _imports(AGENT):
        source, target = _layer(found.module), found.agent_package
        graph.setdefault(source, {})
        if target not in (None, "", source) and _is_agent_layer(target):
            assert target is not None
            graph[source].setdefault(target, found)
    return graph


def _is_agent_layer(name: str | None) -> bool:
    """A package or top-level module (not a name such as `__version__`)."""
    return name is not None and ((AGENT / name).is_dir() or (AGENT / f"{name}.py").is_file())


def _cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One shortest cycle through each package that is on one (breadth-first), deduplicated."""
    cycles: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        paths = {start: [start]}
        frontier = [start]
        found: list[str] | None = None
        while frontier and found is None:
            following = []
            for node in frontier:
                for target in sorted(graph.get(node, {})):
                    if target == start:
                        found = paths[node]
                        break
                    if target not in paths:
                        paths[target] = [*paths[node], target]
                        following.append(target)
                if found is not None:
                    break
            frontier = following
        if found is not None:
            cycles.setdefault(frozenset(found), found)
    return list(cycles.values())


def test_no_cycles_between_packages() -> None:
    """Arrows between the agent's packages point one way only: a cycle is named with one
    import for each of its arrows."""
    graph = _package_graph()
    named = [
        " -> ".join([*cycle, cycle[0]])
        + ": "
        + "; ".join(str(graph[a][b]) for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        for cycle in _cycles(graph)
    ]
    assert named == []


def test_the_cycle_check_sees_a_cycle() -> None:
    here = AGENT / "a" / "m.py"
    graph = {
        "a": {"b": Import(here, "edge_agent.b", 1)},
        "b": {"c": Import(here, "edge_agent.c", 2)},
        "c": {"a": Import(here, "edge_agent.a", 3), "d": Import(here, "edge_agent.d", 4)},
        "d": {},
    }
    assert _cycles(graph) == [["a", "b", "c"]]


def _integration_graph() -> dict[str, dict[str, Import]]:
    """Integration module -> the integration modules it imports, each with one import that
    shows it. Every import counts: at the top, inside a function, and behind `TYPE_CHECKING`
    (a cycle only the type checker follows is still one for a reader)."""
    graph: dict[str, dict[str, Import]] = {}
    for module in sorted(INTEGRATION.glob("*.py")):
        source = module.stem
        edges = graph.setdefault(source, {})
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    targets.append(node.module.split(".")[0])
                else:  # `from . import x`: a module, or a name of the package's __init__
                    targets += [
                        alias.name if (INTEGRATION / f"{alias.name}.py").is_file() else "__init__"
                        for alias in node.names
                    ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "custom_components.sbms."
            ):
                assert node.module is not None
                targets.append(node.module.split(".")[2])
            for target in targets:
                if target != source:
                    edges.setdefault(target, Import(module, f".{target}", node.lineno))
    return graph


def test_no_cycles_between_integration_modules() -> None:
    """The integration's modules form one-way layers (docs/architecture.md, "The integration's
    modules"): a cycle is named with one import for each of its arrows."""
    graph = _integration_graph()
    assert {"coordinator", "sensor", "shedding_manager"} <= set(graph)  # the reader sees them
    named = [
        " -> ".join([*cycle, cycle[0]])
        + ": "
        + "; ".join(str(graph[a][b]) for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        for cycle in _cycles(graph)
    ]
    assert named == []


def test_the_integration_reader_sees_type_checking_and_package_imports() -> None:
    graph = _integration_graph()
    assert "__init__" in graph["config_flow"]  # `from . import ENTRY_VERSION`
    assert "coordinator" in graph["entity"]
