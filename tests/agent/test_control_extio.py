"""Output logic per EXTIO type, alone and through the controller (SoC types 3 and 4)."""

from __future__ import annotations

import pytest

from edge_agent.control.controller import Controller
from edge_agent.control.extio import (
    OutputRequestInputs,
    is_charge_type,
    is_load_type,
    requested_state,
)
from edge_agent.control.model import EventKind, Measurement
from edge_agent.control.settings import ControlSettings, OutputSettings, OutputType, Wiring

NEUTRAL = OutputRequestInputs(
    high_soc_alarm=False, low_soc_alarm=False, dual_pv_level=None, fault_active=False
)


def test_type_classification() -> None:
    assert [t for t in OutputType if is_charge_type(t)] == [
        OutputType.HVD,
        OutputType.HIGH_SOC,
        OutputType.DUAL_PV,
    ]
    assert [t for t in OutputType if is_load_type(t)] == [OutputType.LVD, OutputType.LOW_SOC]


def test_unused_never_requests_on() -> None:
    everything = OutputRequestInputs(True, True, 3, True)
    assert not requested_state(OutputType.UNUSED, everything)
    assert not requested_state(OutputType.UNUSED, NEUTRAL)


@pytest.mark.parametrize(
    ("level", "primary", "secondary"),
    [(None, True, False), (1, True, False), (2, False, True), (3, True, True)],
)
def test_dual_pv_levels_map_to_sources(level: int | None, primary: bool, secondary: bool) -> None:
    inputs = OutputRequestInputs(False, False, level, False)
    assert requested_state(OutputType.HVD, inputs) is primary
    assert requested_state(OutputType.DUAL_PV, inputs) is secondary


def test_soc_and_fault_types_follow_their_conditions() -> None:
    assert requested_state(OutputType.HIGH_SOC, NEUTRAL)
    assert not requested_state(OutputType.HIGH_SOC, OutputRequestInputs(True, False, None, False))
    assert requested_state(OutputType.LOW_SOC, NEUTRAL)
    assert not requested_state(OutputType.LOW_SOC, OutputRequestInputs(False, True, None, False))
    assert not requested_state(OutputType.FAULT, NEUTRAL)
    assert requested_state(OutputType.FAULT, OutputRequestInputs(False, False, None, True))
    assert requested_state(OutputType.LVD, NEUTRAL)


SOC_OUTPUTS = (
    OutputSettings("high", OutputType.HIGH_SOC, Wiring.CHARGE),
    OutputSettings("low", OutputType.LOW_SOC, Wiring.LOAD),
    OutputSettings("fault", OutputType.FAULT, Wiring.FAULT),
)


def _at_soc(
    controller: Controller, t: float, soc: float, volts: float = 3.30
) -> tuple[bool, bool, list[EventKind]]:
    controller.set_soc(soc, now=t)
    report = controller.update(Measurement(t, (volts,) * 8, 0.0, external_temperatures=(20.0,)))
    return report.outputs["high"], report.outputs["low"], [e.kind for e in report.events]


def test_high_soc_type_3_thresholds_and_events() -> None:
    controller = Controller(ControlSettings(outputs=SOC_OUTPUTS), 0.0)
    assert _at_soc(controller, 1, 94.99)[0]
    high, _, events = _at_soc(controller, 2, 95.0)  # at the threshold: off
    assert not high
    assert EventKind.HIGH_SOC_ALARM in events
    assert not _at_soc(controller, 3, 90.0)[0]  # at release: still off
    high, _, events = _at_soc(controller, 4, 89.99)
    assert high
    assert EventKind.HIGH_SOC_CLEAR in events


def test_low_soc_type_4_thresholds_and_events() -> None:
    controller = Controller(ControlSettings(outputs=SOC_OUTPUTS), 0.0)
    assert _at_soc(controller, 1, 20.01)[1]
    _, low, events = _at_soc(controller, 2, 20.0)
    assert not low
    assert EventKind.LOW_SOC_ALARM in events
    assert not _at_soc(controller, 3, 25.0)[1]
    _, low, events = _at_soc(controller, 4, 25.01)
    assert low
    assert EventKind.LOW_SOC_CLEAR in events


def test_soc_alarm_events_raised_without_such_outputs() -> None:
    controller = Controller(ControlSettings(), 0.0)  # SBMS0 defaults: no type 3 or 4
    controller.set_soc(96.0, now=0.0)
    report = controller.update(Measurement(1.0, (3.3,) * 8, 0.0, external_temperatures=(20.0,)))
    assert EventKind.HIGH_SOC_ALARM in [e.kind for e in report.events]
    assert (report.high_soc_alarm, report.low_soc_alarm) == (True, False)


def test_the_report_carries_the_alarm_states_with_their_hysteresis() -> None:
    controller = Controller(ControlSettings(), 0.0)
    alarms = []
    for t, soc in enumerate([50.0, 20.0, 24.0, 25.01, 95.0, 91.0, 89.99], start=1):
        controller.set_soc(soc, now=float(t))
        report = controller.update(
            Measurement(float(t), (3.3,) * 8, 0.0, external_temperatures=(20.0,))
        )
        alarms.append((report.low_soc_alarm, report.high_soc_alarm))
    assert alarms == [
        (False, False),
        (True, False),
        (True, False),  # inside the release band: still raised
        (False, False),
        (False, True),
        (False, True),
        (False, False),
    ]


def test_soc_types_also_obey_protection() -> None:
    controller = Controller(ControlSettings(outputs=SOC_OUTPUTS), 0.0)
    controller.set_soc(50.0, now=0.0)
    hot = Measurement(
        1.0, (3.3,) * 8, 0.0, internal_temperature=61.0, external_temperatures=(20.0,)
    )
    report = controller.update(hot)  # SoC alone would turn both on
    assert report.outputs == {"high": False, "low": False, "fault": True}
    report = controller.update(
        Measurement(2.0, (3.3,) * 8, 0.0, internal_temperature=40.0, external_temperatures=(20.0,))
    )
    assert report.outputs == {"high": True, "low": True, "fault": False}
