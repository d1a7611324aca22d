"""The real agent on a simulated box with a PV heat path, for the surplus-load end-to-end test
(test_surplus_loads_end_to_end.py), run as its own process so its loop stays out of Home
Assistant's: `python -m tests.integration.heat_box_agent --port P --control DIR`.

A sunny June morning with the pack at 97 %, a 1.6 ohm element on the primary array's DSSR20
(the box of tests/agent/test_diversion_end_to_end.py). It publishes its first state at once,
then waits for `DIR/go` before time runs, so Home Assistant is set up before the sun fills the
pack. `DIR/load` holds "1" while the surplus load (in Home Assistant) is on: the box then draws
`--load-w` more, as an appliance on the inverter would. The tank's thermistor is on xT2
(`diversion.tank_temperature: external2`); before each state goes out, `DIR/tank` gets a line
"<state timestamp> <the simulated tank's true temperature>", for the test to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec
from edge_agent.simulator.pv import CloudSpec

SAMPLE_S = 5.0


def _system(agent_id: str) -> SimulatedSystem:
    spec = BoxSpec(
        start=BoxSpec().start + 10 * 3600,
        clouds=CloudSpec(sunny_probability=1.0, sunny_passing_clouds_per_day=0),
        initial_soc=0.97,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, tank=WaterTankSpec(draws=()), tank_sensor_on_xt2=True),
    )
    config = simulated_config(spec, sample_interval_s=SAMPLE_S)
    config = dataclasses.replace(config, agent_id=agent_id, publish=PublishSettings.every_sample())
    return SimulatedSystem(spec, config)


async def _run(args: argparse.Namespace) -> None:
    control = Path(args.control)
    system = _system(args.agent_id)
    base = system.box.spec
    remote = RemoteControl(system.agent, system.config, None, system.box.now)
    settings = MqttSettings(host=args.host, port=args.port, agent_id=args.agent_id)
    link = build_link(settings, remote, Identity("simulator", "heat-box-e2e"))
    stop = asyncio.Event()
    task = asyncio.ensure_future(link.run(stop))
    truth = (control / "tank").open("a", encoding="utf-8", buffering=1)  # line-buffered

    def step() -> None:
        report = system.agent.step(system.box.now)
        tank = system.box.tank
        assert tank is not None
        truth.write(f"{report.timestamp!r} {tank.temperature_c!r}\n")
        link.offer_report(report)

    for _ in range(2):  # a decided state with the diversion's fields before the sun runs
        system.box.advance(SAMPLE_S)
        step()
    # A file another process writes: nothing to await but the file itself.
    while not (control / "go").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    try:
        for _ in range(int(args.hours * 3600 / SAMPLE_S)):
            load_on = (control / "load").exists() and (control / "load").read_text() == "1"
            extra = args.load_w if load_on else 0.0
            system.box.spec = dataclasses.replace(base, base_load_w=base.base_load_w + extra)
            system.box.advance(SAMPLE_S)
            step()
            await asyncio.sleep(args.pace)
    finally:
        truth.close()
        stop.set()
        await asyncio.wait_for(task, 10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--agent-id", default="sunny")
    parser.add_argument("--control", required=True)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--pace", type=float, default=0.02, help="real seconds per sample")
    parser.add_argument("--load-w", type=float, default=1500.0)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
