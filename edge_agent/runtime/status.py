"""The one-line live status printed by `sbms-agent --simulate` and on a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from edge_agent.control.model import ControlReport


def status_line(report: ControlReport) -> str:
    """E.g. `2026-06-01 12:00 SoC 62.3% 26.41V +12.30A cells 3.298-3.304V (6mV) ...`."""
    when = datetime.fromtimestamp(report.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [when, f"SoC {report.soc:5.1f}%"]
    measurement = report.measurement
    if measurement is None:
        parts.append("no measurement yet")
    else:
        parts += [
            f"{measurement.battery_voltage:6.2f}V",
            f"{measurement.battery_current:+7.2f}A",
            f"cells {measurement.min_cell:.3f}-{measurement.max_cell:.3f}V"
            f" ({measurement.cell_delta * 1000:.0f}mV)",
        ]
        if measurement.pv_current is not None:
            parts.append(f"PV {measurement.pv_current:5.2f}A")
    if report.dual_pv_level is not None:
        parts.append(f"L{report.dual_pv_level}")
    outputs = " ".join(
        f"{name}={'ON' if on else 'off'}" for name, on in sorted(report.outputs.items())
    )
    parts.append(f"| {outputs}")
    problems = sorted([*report.faults, *report.interlocks])
    if problems:
        parts.append("| " + ",".join(problems))
    return " ".join(parts)
