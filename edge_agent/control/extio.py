"""What each EXTIO output type asks for, before any protection is applied.

These are requests only: `Controller._compose_outputs` is the one place that ANDs them with
the charge and load permissions, the forced-off list and the staleness check.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.control.settings import OutputType

CHARGE_TYPES = frozenset({OutputType.HVD, OutputType.HIGH_SOC, OutputType.DUAL_PV})
LOAD_TYPES = frozenset({OutputType.LVD, OutputType.LOW_SOC})


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
    return False
