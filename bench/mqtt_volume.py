"""MQTT state volume with the default publishing policy: `python -m bench.mqtt_volume`.

Runs the real agent on the simulated box (1 s samples) through whole days and counts the
states the policy would publish and their encoded size, per hour of daylight (PV producing)
and of night. Events, announce, config and results are not counted: they are rare.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass

from edge_agent.config.link import PublishSettings
from edge_agent.control.model import ControlReport
from edge_agent.mqtt.payloads import encode, state_payload
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem
from edge_agent.simulator.pv import CloudSpec

_DAYLIGHT_PV_A = 0.05  # an hour with PV current above this in any sample counts as day


@dataclass
class _Hour:
    messages: int = 0
    bytes: int = 0
    daylight: bool = False


def measure(
    spec: BoxSpec, days: float, settings: PublishSettings, warmup_s: float = 60.0
) -> dict[str, tuple[float, float, int]]:
    """{"day"|"night"|"all": (messages per hour, bytes per hour, hours)}."""
    system = SimulatedSystem(spec)
    system.run(warmup_s)
    policy = PublishPolicy(settings)
    hours: dict[int, _Hour] = defaultdict(_Hour)
    start = system.box.now

    def on_report(report: ControlReport) -> None:
        hour = hours[int((report.timestamp - start) // 3600)]
        m = report.measurement
        if m is not None and (m.pv_current or 0.0) > _DAYLIGHT_PV_A:
            hour.daylight = True
        if policy.due(report, report.timestamp):
            hour.messages += 1
            hour.bytes += len(encode(state_payload(report)))
            policy.mark_published(report, report.timestamp)

    system.run(days * 86400.0, on_report)
    full_hours = int(days * 24)  # the last, partial hour would skew the rates
    complete = [hour for index, hour in hours.items() if index < full_hours]
    figures: dict[str, tuple[float, float, int]] = {}
    for name, chosen in (
        ("day", [h for h in complete if h.daylight]),
        ("night", [h for h in complete if not h.daylight]),
        ("all", complete),
    ):
        count = max(1, len(chosen))
        figures[name] = (
            sum(h.messages for h in chosen) / count,
            sum(h.bytes for h in chosen) / count,
            len(chosen),
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--cloudy", action="store_true", help="mixed days with passing clouds")
    args = parser.parse_args()
    clouds = (
        CloudSpec(sunny_probability=0.0, mixed_probability=1.0)
        if args.cloudy
        else CloudSpec(sunny_probability=1.0, sunny_passing_clouds_per_day=0.0)
    )
    spec = BoxSpec(clouds=clouds)
    settings = PublishSettings()
    print(f"MQTT state volume, default policy ({settings}), {args.days:g} simulated day(s)")
    for name, (messages, size, count) in measure(spec, args.days, settings).items():
        print(
            f"  {name:5s} {messages:7.1f} msgs/h  {size / 1024:8.1f} KiB/h  "
            f"({size / max(messages, 1):.0f} B/msg, {count} h)"
        )


if __name__ == "__main__":
    main()
