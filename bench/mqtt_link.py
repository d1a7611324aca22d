"""MQTT link figures: `python -m bench.mqtt_link` (needs mosquitto on the PATH or in /usr/sbin).

- publish-to-receive latency of a state through a real mosquitto on loopback (p50/p99): from
  the moment the control loop hands a report to the link until a subscriber has the message;
- CPU time per published state: building and encoding the payload (pure), and the whole
  process's CPU per state while the link publishes (payload, aiomqtt/paho, subscriber).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path

import aiomqtt

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.mqtt.payloads import encode, state_payload
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem
from tests.helpers.mqtt_broker import MosquittoBroker


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


def bench_payload(count: int) -> None:
    system = SimulatedSystem(BoxSpec.for_cells(8))
    report = system.run(60)
    assert report is not None
    start = time.process_time()
    size = 0
    for _ in range(count):
        size = len(encode(state_payload(report)))
    per_state = (time.process_time() - start) / count * 1e6
    print(f"state payload build + encode       {per_state:7.1f} us CPU   ({size} bytes)")


async def bench_link(port: int, count: int) -> None:
    spec = BoxSpec.for_cells(8)
    system = SimulatedSystem(spec)
    config = dataclasses.replace(
        system.config, agent_id="bench", publish=PublishSettings.every_sample()
    )
    remote = RemoteControl(system.agent, config, None, system.box.now)
    settings = MqttSettings(host="127.0.0.1", port=port, agent_id="bench")
    link = build_link(settings, remote, Identity("simulator", "bench"))
    stop = asyncio.Event()
    link_task = asyncio.ensure_future(link.run(stop))
    latencies: list[float] = []
    async with aiomqtt.Client("127.0.0.1", port) as subscriber:
        await subscriber.subscribe("sbms/bench/state", qos=1)
        for _ in range(1000):  # up to 10 s for the link's first connection
            if link.connected:
                break
            await asyncio.sleep(0.01)
        messages = subscriber.messages
        await _drain(messages)
        cpu_start = time.process_time()
        for _ in range(count):
            system.box.advance(1.0)
            report = system.agent.step(system.box.now)
            handed_over = time.perf_counter()
            link.offer_report(report)
            async with asyncio.timeout(5):
                await anext(messages)
            latencies.append((time.perf_counter() - handed_over) * 1000)
        cpu_per_state = (time.process_time() - cpu_start) / count * 1e6
    stop.set()
    await link_task
    print(
        f"state publish -> receive, loopback  p50 {_percentile(latencies, 0.5):5.2f} ms"
        f"   p99 {_percentile(latencies, 0.99):5.2f} ms   ({count} states, QoS 1)"
    )
    print(
        f"process CPU per published state    {cpu_per_state:7.1f} us"
        "   (agent step + link + subscriber, one process)"
    )


async def _drain(messages: object) -> None:
    """Skip the retained state the link published on connecting."""
    iterator = messages.__aiter__()  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(0.5):
            while True:
                await anext(iterator)
    except TimeoutError:
        return


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.mqtt_link", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    bench_payload(args.count)
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp)) as broker:
        asyncio.run(bench_link(broker.port, args.count))


if __name__ == "__main__":
    main()
