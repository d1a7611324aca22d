"""What each EXTIO output type asks for, and which types each wiring may take.

The requests are only requests: `Controller._compose_outputs` is the one place that ANDs them
with the charge and load permissions (by type and by wiring), the forced-off list and the
staleness check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_agent.control.settings import OutputSettings, OutputType, Wiring

CHARGE_TYPES = frozenset({OutputType.HVD, OutputType.HIGH_SOC, OutputType.DUAL_PV})
LOAD_TYPES = frozenset({OutputType.LVD, OutputType.LOW_SOC})

# The types an output may have, by what it physically switches. Type 0 never conducts, so
# every wiring but a fault's may be unused. A signal switches no power: any type but dual PV
# (which would take the place of a real array in the staging) and diversion (which belongs to
# a heat path). A heater takes diversion only: it must never be driven like a battery path
# (type 1 on a heat path would conduct together with the battery path).
ALLOWED_TYPES: Mapping[Wiring, frozenset[OutputType]] = {
    Wiring.CHARGE: frozenset({OutputType.UNUSED, *CHARGE_TYPES}),
    Wiring.LOAD: frozenset({OutputType.UNUSED, *LOAD_TYPES}),
    Wiring.SIGNAL: frozenset(set(OutputType) - {OutputType.DUAL_PV, OutputType.DIVERSION}),
    Wiring.FAULT: frozenset({OutputType.FAULT}),
    Wiring.NONE: frozenset({OutputType.UNUSED}),
    Wiring.HEATER: frozenset({OutputType.UNUSED, OutputType.DIVERSION}),
}


def inferred_wiring(output_type: OutputType) -> Wiring:
    """The wiring a file without `wiring` keys is taken to have: the conservative reading of
    its type (a type 3 or 4 output may be a mere alarm, but then protection costs nothing)."""
    if output_type in CHARGE_TYPES:
        return Wiring.CHARGE
    if output_type in LOAD_TYPES:
        return Wiring.LOAD
    if output_type is OutputType.FAULT:
        return Wiring.FAULT
    if output_type is OutputType.DIVERSION:
        return Wiring.HEATER
    return Wiring.NONE


def remote_types(wiring: Wiring) -> frozenset[OutputType]:
    """The types a remote request may give an output of this wiring: those its wiring allows,
    and never into or out of the fault type (the file decides which outputs report faults)."""
    if wiring is Wiring.FAULT:
        return ALLOWED_TYPES[wiring]
    return ALLOWED_TYPES[wiring] - {OutputType.FAULT}


def charges(output: OutputSettings) -> bool:
    """Does this output switch a charge source on when it conducts?"""
    return output.wiring is Wiring.CHARGE and output.type in CHARGE_TYPES


def diverts(output: OutputSettings) -> bool:
    """Is this output decided by the diversion rules (control/diversion.py)? Every heater-wired
    output is, whatever its type, and every type 7 output, whatever its wiring."""
    return output.wiring is Wiring.HEATER or output.type is OutputType.DIVERSION


def battery_paths(output: OutputSettings, outputs: Sequence[OutputSettings]) -> tuple[str, ...]:
    """The charge outputs whose arrays a diversion output's heat path belongs to: the one it
    names in `diverts`, or every charge-wired output."""
    if output.diverts is not None:
        return (output.diverts,)
    return tuple(o.name for o in outputs if o.wiring is Wiring.CHARGE)


def diversion_problems(outputs: Sequence[OutputSettings]) -> list[str]:
    """The pairing rules of diversion outputs, one message per broken rule (path-prefixed)."""
    problems: list[str] = []
    by_name = {output.name: output for output in outputs}
    for index, output in enumerate(outputs):
        path = f"outputs[{index}].diverts"
        if output.diverts is None:
            if diverts(output) and not battery_paths(output, outputs):
                problems.append(f"{path}: a diversion output needs a charge-wired output")
            continue
        if not diverts(output):
            problems.append(f"{path}: only a diversion output (type 7, heater) names its array")
            continue
        paired = by_name.get(output.diverts)
        if paired is None or paired.wiring is not Wiring.CHARGE:
            problems.append(f"{path}: must name a charge-wired output (got {output.diverts!r})")
    return problems


def wiring_permits(wiring: Wiring, charge_allowed: bool, load_allowed: bool) -> bool:
    """May an output of this wiring conduct now, whatever its type asks for? A heater's
    permission is the diversion decision, taken apart (`diverts`)."""
    if wiring is Wiring.CHARGE:
        return charge_allowed
    if wiring is Wiring.LOAD:
        return load_allowed
    return wiring is not Wiring.NONE


@dataclass(frozen=True, slots=True)
class OutputRequestInputs:
    """The per-type conditions, already computed by their state machines."""

    high_soc_alarm: bool  # SoC reached soc_alarms.high and has not fallen below high_release
    low_soc_alarm: bool  # SoC reached soc_alarms.low and has not risen above low_release
    dual_pv_level: int | None  # 1..3, None when no type 6 output exists
    fault_active: bool


def is_charge_type(output_type: OutputType) -> bool:
    return output_type in CHARGE_TYPES


def is_load_type(output_type: OutputType) -> bool:
    return output_type in LOAD_TYPES


def type_permits(output_type: OutputType, charge_allowed: bool, load_allowed: bool) -> bool:
    """May an output of this type conduct now, whatever its request?"""
    if is_charge_type(output_type):
        return charge_allowed
    if is_load_type(output_type):
        return load_allowed
    return output_type is OutputType.FAULT


def requested_state(output_type: OutputType, inputs: OutputRequestInputs) -> bool:
    """The state this output type would like; True = conducting."""
    if output_type is OutputType.HVD:
        # Level 2 runs the secondary source alone; without dual PV the primary just charges.
        return inputs.dual_pv_level != 2
    if output_type is OutputType.DUAL_PV:
        return inputs.dual_pv_level in (2, 3)
    if output_type is OutputType.HIGH_SOC:
        return not inputs.high_soc_alarm
    if output_type is OutputType.LVD:
        return True
    if output_type is OutputType.LOW_SOC:
        return not inputs.low_soc_alarm
    if output_type is OutputType.FAULT:
        return inputs.fault_active
    return False  # unused, and diversion (decided by control/diversion.py)
