"""The battery dashboard for one box: `dashboards/sbms.yaml` made to fit the box's entity ids,
cell count, sensors, outputs and optional loads.

    python3 dashboards/sbms_dashboard.py DIAGNOSTICS.json > battery.yaml

DIAGNOSTICS.json is what *Download diagnostics* on the box's device page saves (or the box's
retained `announce` message). Only Python's standard library, so it runs anywhere. The demo
(demo/home_assistant.py) builds its dashboard with the same function.

sbms.yaml is written for the demo's box (agent id `simulator`, 8 cells, a PV shunt, five
outputs of which one diverts to a water heater, two optional loads, one surplus load): list
items that name an entity the box does not have are left out, and the lines between
`# sbms-dashboard: outputs` (or `loads`) and `# sbms-dashboard: end` are written from the box's
outputs (or loads; `diversion` and `diversion-history`: its diversion outputs, their power and
energy, the tank temperature and the surplus loads, nothing on a box with neither a type 7
output nor a surplus load).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

TEMPLATE: Final = Path(__file__).resolve().parent / "sbms.yaml"
TEMPLATE_PREFIX: Final = "sbms_simulator_"
TEMPLATE_CELLS: Final = 8
# What an output switches, by its announced type (docs/protocol.md, `type_name`).
OUTPUT_LABELS: Final = {
    "hvd": "HVD, chargers",
    "lvd": "LVD, loads",
    "high_soc": "high SoC alarm",
    "low_soc": "low SoC alarm",
    "fault": "fault",
    "dual_pv": "dual PV",
    "diversion": "diversion, heater",
    "unused": "unused",
}
# Type numbers 0-7 (diagnostics keep the number, the announce also the name); 7, PV diversion,
# is the agent's extension of the SBMS0's 0-6.
OUTPUT_TYPES: Final = (
    "unused",
    "hvd",
    "lvd",
    "high_soc",
    "low_soc",
    "fault",
    "dual_pv",
    "diversion",
)
_MARKER = re.compile(r"^(\s*)# sbms-dashboard: ([\w-]+)\s*$")


@dataclass(frozen=True, slots=True)
class Load:
    """An optional load of the box's load shedding, or a surplus load: its title and the
    entity it switches."""

    title: str
    entity_id: str


@dataclass(frozen=True, slots=True)
class Box:
    """What the dashboard needs to know of a box (from its announce)."""

    agent_id: str
    cells: int
    pv_shunt: bool
    temperatures: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]  # (name, type_name)
    loads: tuple[Load, ...] = ()
    surplus_loads: tuple[Load, ...] = ()
    # The box reads its heater tank's temperature (its configuration's
    # `diversion.tank_temperature`): the Heater tank temperature entity, which is then that
    # input's only one (the integration offers no External temperature 2 beside it).
    tank: bool = False

    @classmethod
    def from_announce(
        cls,
        announce: Mapping[str, Any],
        loads: Iterable[Load] = (),
        surplus_loads: Iterable[Load] = (),
        *,
        tank: bool = False,
    ) -> Box:
        """From the announce as published (docs/protocol.md) or as diagnostics show it; an
        announce does not say whether the box reads a tank (its configuration does)."""
        measurements = announce.get("measurements", {})
        pv_shunt = bool(announce.get("pv_current", measurements.get("pv_current", True)))
        temperatures = announce.get("temperatures", measurements.get("temperatures", []))
        return cls(
            agent_id=str(announce["agent_id"]),
            cells=int(announce["cells"]),
            pv_shunt=pv_shunt,
            temperatures=tuple(str(name) for name in temperatures),
            outputs=tuple(
                (str(output["name"]), _type_name(output)) for output in announce.get("outputs", [])
            ),
            loads=tuple(loads),
            surplus_loads=tuple(surplus_loads),
            tank=tank,
        )

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Box:
        """From a diagnostics download (`data.announce`, `data.config`,
        `data.load_shedding.loads`, `data.surplus_loads.loads`) or from a bare announce."""
        data = document.get("data", document)
        if "announce" not in data:
            return cls.from_announce(data)
        announce = dict(data["announce"])
        announce.setdefault("agent_id", data.get("entry", {}).get("data", {}).get("agent_id"))
        return cls.from_announce(
            announce,
            _loads_of(data.get("load_shedding")),
            _loads_of(data.get("surplus_loads")),
            tank=reads_tank(data.get("config")),
        )

    @property
    def prefix(self) -> str:
        """Entity ids follow the device name, "SBMS <agent id>", slugified."""
        return f"sbms_{slugify(self.agent_id)}_"


def reads_tank(config: Mapping[str, Any] | None) -> bool:
    """Does the box's configuration (its `config` message, or diagnostics' `config`) name the
    input that reads its heater tank?"""
    diversion = (config or {}).get("diversion")
    return isinstance(diversion, Mapping) and diversion.get("tank_temperature") is not None


def _loads_of(section: Mapping[str, Any] | None) -> list[Load]:
    """A diagnostics section's loads (`load_shedding` or `surplus_loads`; absent: none)."""
    return [
        Load(str(load.get("title") or load["entity_id"]), str(load["entity_id"]))
        for load in (section or {}).get("loads", [])
    ]


def _type_name(output: Mapping[str, Any]) -> str:
    if "type_name" in output:
        return str(output["type_name"])
    number = output.get("type")
    return (
        OUTPUT_TYPES[number] if isinstance(number, int) and 0 <= number < len(OUTPUT_TYPES) else ""
    )


def slugify(text: str) -> str:
    """Home Assistant's slugify for the ASCII names agent ids and load titles are."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unknown"


def render(box: Box, template: str | None = None) -> str:
    """The dashboard for `box`."""
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    absent = [f"_cell_{cell}_" for cell in range(box.cells + 1, TEMPLATE_CELLS + 1)]
    if not box.pv_shunt:
        absent += ["_pv_", "_load_power", "_load_current", "_load_energy"]
    if "battery" not in box.temperatures:
        absent.append("_battery_temperature")
    if not _diverting(box):
        absent += ["_diversion_power", "_diverted_energy"]
    lines = _fill_markers(text.splitlines(), box)
    lines = _drop_items(lines, absent)
    return "\n".join(lines).replace(TEMPLATE_PREFIX, box.prefix) + "\n"


def _output_lines(box: Box, indent: str) -> list[str]:
    lines = []
    for name, type_name in box.outputs:
        label = OUTPUT_LABELS.get(type_name, type_name.replace("_", " "))
        title = f"{name.upper()} ({label})" if label else name.upper()
        lines += [
            f"{indent}- entity: binary_sensor.{TEMPLATE_PREFIX}output_{slugify(name)}",
            f"{indent}  name: {title}",
        ]
    return lines


def _load_lines(box: Box, indent: str) -> list[str]:
    lines = []
    for load in box.loads:
        lines += [
            f"{indent}- entity: sensor.{TEMPLATE_PREFIX}load_shedding_{slugify(load.title)}",
            f"{indent}  name: {load.title} shedding",
            f"{indent}- entity: {load.entity_id}",
            f"{indent}  name: {load.title}",
        ]
    return lines


def _diverting(box: Box) -> list[tuple[str, str]]:
    """(name, label) of each diversion output: "Heating" when there is one (a tile's name
    has room for a word), its name otherwise."""
    names = [name for name, type_name in box.outputs if type_name == "diversion"]
    if len(names) == 1:
        return [(names[0], "Heating")]
    return [(name, f"{name.upper()} heating") for name in names]


def _surplus_tile(load: Load, indent: str) -> list[str]:
    """What surplus loads do with one load: idle, waiting, "On surplus", overridden."""
    return [
        f"{indent}- type: tile",
        f"{indent}  entity: sensor.{TEMPLATE_PREFIX}surplus_load_{slugify(load.title)}",
        f"{indent}  name: {load.title}",
        f"{indent}  icon: mdi:solar-power-variant-outline",
    ]


def _diversion_lines(box: Box, indent: str) -> list[str]:
    """Where the surplus went, under "Today": each diversion output and the tank's
    temperature; today's heat beside the heat paths' power and what each surplus load does
    (stacked, so the two columns line up)."""
    outputs = _diverting(box)
    if not outputs and not box.surplus_loads:
        return []
    lines = [
        f"{indent}- type: heading",
        f"{indent}  heading: {'Water heater' if outputs else 'Surplus loads'}",
        f"{indent}  heading_style: subtitle",
    ]
    if not outputs:
        for load in box.surplus_loads:
            lines += _surplus_tile(load, indent)
        return lines
    for name, label in outputs:
        lines += [
            f"{indent}- type: tile",
            f"{indent}  entity: binary_sensor.{TEMPLATE_PREFIX}output_{slugify(name)}",
            f"{indent}  name: {label}",
            f"{indent}  icon: mdi:water-boiler",
        ]
    if box.tank:
        lines += [
            f"{indent}- type: tile",
            f"{indent}  entity: sensor.{TEMPLATE_PREFIX}heater_tank_temperature",
            f"{indent}  name: Tank",
            f"{indent}  icon: mdi:thermometer-water",
        ]
    lines += [
        f"{indent}- type: statistic",
        f"{indent}  entity: sensor.{TEMPLATE_PREFIX}diverted_energy",
        f"{indent}  name: Heated today",
        f"{indent}  icon: mdi:water-thermometer",
        f"{indent}  stat_type: change",
        f"{indent}  period:",
        f"{indent}    calendar:",
        f"{indent}      period: day",
        f"{indent}  grid_options:",
        f"{indent}    columns: 6",
        f"{indent}- type: vertical-stack",
        f"{indent}  grid_options:",
        f"{indent}    columns: 6",
        f"{indent}  cards:",
        f"{indent}    - type: tile",
        f"{indent}      entity: sensor.{TEMPLATE_PREFIX}diversion_power",
        f"{indent}      name: Heater power",
        f"{indent}      icon: mdi:heat-wave",
    ]
    for load in box.surplus_loads:
        lines += _surplus_tile(load, indent + "    ")
    return lines


def _diversion_history_lines(box: Box, indent: str) -> list[str]:
    """The tank's temperature, when the panels heated it and when the surplus loads ran,
    over the day."""
    outputs = _diverting(box)
    if not outputs and not box.surplus_loads:
        return []
    lines = [
        f"{indent}- type: history-graph",
        f"{indent}  title: {'Water heater' if outputs else 'Surplus loads'}",
        f"{indent}  hours_to_show: 24",
        f"{indent}  entities:",
    ]
    if box.tank:
        lines += [
            f"{indent}    - entity: sensor.{TEMPLATE_PREFIX}heater_tank_temperature",
            f"{indent}      name: Tank",
        ]
    for name, label in outputs:
        lines += [
            f"{indent}    - entity: binary_sensor.{TEMPLATE_PREFIX}output_{slugify(name)}",
            f"{indent}      name: {label}",
        ]
    for load in box.surplus_loads:
        lines += [
            f"{indent}    - entity: sensor.{TEMPLATE_PREFIX}surplus_load_{slugify(load.title)}",
            f"{indent}      name: {load.title}",
        ]
    # A timeline row for each surplus load below the tank's graph.
    rows = 5 + len(box.surplus_loads)
    return [
        *lines,
        f"{indent}  grid_options:",
        f"{indent}    columns: 36",
        f"{indent}    rows: {rows}",
    ]


def _fill_markers(lines: Sequence[str], box: Box) -> list[str]:
    """Rewrite what stands between `# sbms-dashboard: NAME` and `# sbms-dashboard: end`."""
    makers = {
        "outputs": _output_lines,
        "loads": _load_lines,
        "diversion": _diversion_lines,
        "diversion-history": _diversion_history_lines,
    }
    result: list[str] = []
    skipping = False
    for line in lines:
        match = _MARKER.match(line)
        if match and match.group(2) == "end":
            skipping = False
        elif match and match.group(2) in makers:
            result.append(line)
            result += makers[match.group(2)](box, match.group(1))
            skipping = True
            continue
        if not skipping:
            result.append(line)
    return result


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _drop_items(lines: list[str], fragments: Sequence[str]) -> list[str]:
    """Leave out each YAML list item whose own lines (not its nested items') name one of
    `fragments`: a card about a missing entity goes, a list entry inside a card goes alone."""
    if not fragments:
        return lines
    starts = [i for i, line in enumerate(lines) if line.lstrip(" ").startswith("- ")]
    ends = {}
    for start in starts:
        end = start + 1
        while end < len(lines) and (
            not lines[end].strip() or _indent(lines[end]) > _indent(lines[start])
        ):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # blank lines after an item belong to what follows
        ends[start] = end
    dropped: set[int] = set()
    for start in starts:
        nested = {
            i for inner in starts if start < inner < ends[start] for i in range(inner, ends[inner])
        }
        own = (lines[i] for i in range(start, ends[start]) if i not in nested)
        if any(fragment in line for line in own for fragment in fragments):
            dropped.update(range(start, ends[start]))
    return [line for i, line in enumerate(lines) if i not in dropped]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the SBMS battery dashboard for one box, ready to paste into Home "
        "Assistant's raw configuration editor.",
    )
    parser.add_argument(
        "source",
        help="the box's diagnostics (device page > Download diagnostics) or its announce "
        "message, as JSON; '-' reads standard input",
    )
    args = parser.parse_args(argv)
    raw = sys.stdin.read() if args.source == "-" else Path(args.source).read_text("utf-8")
    try:
        box = Box.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as err:
        parser.error(f"{args.source}: not a box's diagnostics or announce ({err!r})")
    sys.stdout.write(render(box))
    return 0


if __name__ == "__main__":
    sys.exit(main())
