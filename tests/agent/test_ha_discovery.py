"""Native Home Assistant MQTT discovery: the payload (pure) and the link against mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig
from edge_agent.config.link import MqttSettings
from edge_agent.control.model import ControlReport
from edge_agent.mqtt.client import MqttLink
from edge_agent.mqtt.ha_discovery import discovery_payload
from edge_agent.mqtt.payloads import encode, state_payload
from edge_agent.mqtt.topics import Topics
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec
from tests.helpers.mqtt import AsyncWatcher
from tests.helpers.mqtt_broker import MosquittoBroker

pytestmark = pytest.mark.usefixtures("allow_sockets")

AGENT_ID = "shed"
TOPICS = Topics("sbms", AGENT_ID)


def _system(**spec: Any) -> SimulatedSystem:
    box = BoxSpec(**spec)
    config = dataclasses.replace(simulated_config(box), agent_id=AGENT_ID)
    return SimulatedSystem(box, config)


@pytest.fixture(scope="module")
def running() -> tuple[AgentConfig, ControlReport]:
    system = _system()
    report = system.run(30.0)
    assert report is not None
    return system.config, report


def _components(
    config: AgentConfig, source: str = "diy", read: frozenset[str] = frozenset()
) -> dict[str, dict[str, Any]]:
    topic, payload = discovery_payload(config, TOPICS, "sn-1", source, temperatures_read=read)
    assert topic == f"homeassistant/device/{AGENT_ID}/config"
    components: dict[str, dict[str, Any]] = payload["cmps"]
    return components


def _render(template: str, state: dict[str, Any]) -> str:
    """Render like Home Assistant does (jinja2) when available, else check the key names."""
    try:
        import jinja2  # optional: only the Home Assistant venv has it
    except ImportError:
        keys = re.findall(r"value_json\.(\w+)", template)
        assert keys
        for key in keys:
            assert key in state, template
        return "checked"
    return (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string(template)
        .render(value_json=state)
    )


# ---------------------------------------------------------------------------------------------
# The payload
# ---------------------------------------------------------------------------------------------


def test_device_origin_availability(running: tuple[AgentConfig, ControlReport]) -> None:
    config, _ = running
    _, payload = discovery_payload(config, TOPICS, "sn-1", "diy")
    assert payload["dev"]["ids"] == [f"sbms_{AGENT_ID}"]
    assert payload["dev"]["sn"] == "sn-1"
    assert {"name", "mf", "mdl", "sw"} <= set(payload["dev"])
    assert payload["o"]["name"] == "sbms-agent"
    assert {"sw", "url"} <= set(payload["o"])
    assert payload["avty"] == [
        {"t": TOPICS.status, "pl_avail": "online", "pl_not_avail": "offline"}
    ]
    assert payload["qos"] == 1
    assert "object_id" not in encode(payload).decode()  # stops working in HA 2026.4


def test_every_component_reads_the_state_topic(
    running: tuple[AgentConfig, ControlReport],
) -> None:
    config, report = running
    state = json.loads(encode(state_payload(report)))
    components = _components(config)
    for unique_id, component in components.items():
        assert component["uniq_id"] == unique_id
        assert component["stat_t"] == TOPICS.state
        assert component["p"] in ("sensor", "binary_sensor")
        assert component["default_entity_id"].startswith(f"{component['p']}.sbms_{AGENT_ID}_")
        rendered = _render(component["val_tpl"], state)
        if component["p"] == "binary_sensor" and rendered != "checked":
            assert rendered in ("ON", "OFF"), (unique_id, rendered)
        elif rendered != "checked":
            assert rendered == "None" or float(rendered) == float(rendered), unique_id
    ids = {component["default_entity_id"] for component in components.values()}
    assert len(ids) == len(components)


def test_templates_survive_a_state_without_measurement() -> None:
    system = _system()
    system.box.bus.fail_all()
    report = system.run(3.0)
    assert report is not None
    state = json.loads(encode(state_payload(report)))
    assert state["cells"] == []
    for component in _components(system.config).values():
        rendered = _render(component["val_tpl"], state)
        if component["p"] == "sensor" and component.get("dev_cla") != "energy":
            assert rendered in ("None", "checked") or component["uniq_id"].endswith(
                ("_soc", "_soc_uncertainty", "_remaining_ah")
            ), (component["uniq_id"], rendered)


def test_stale_measurements_render_as_unknown() -> None:
    """After a failure the state repeats the last good values with measurement_ok false:
    Home Assistant must not show them as current (None renders as unknown)."""
    system = _system()
    system.run(5.0)
    system.box.bus.fail_all()
    report = system.run(system.config.control.stale_after_s + 1.0)
    assert report is not None
    state = json.loads(encode(state_payload(report)))
    assert state["measurement_ok"] is False
    assert state["voltage"] is not None  # the stale value the templates must hide
    measured = {"voltage", "battery_power", "cell_min", "cell_max", "cell_1", "time_to_empty_s"}
    for component in _components(system.config).values():
        key = component["uniq_id"].removeprefix(f"sbms_{AGENT_ID}_")
        rendered = _render(component["val_tpl"], state)
        if rendered == "checked":  # no jinja2 (agent-only venv): key names checked instead
            continue
        if key in measured or key.startswith("temperature_"):
            assert rendered == "None", (key, rendered)
        elif (
            key in ("soc", "soc_uncertainty", "remaining_ah")
            or component.get("dev_cla") == "energy"
        ):
            assert float(rendered) >= 0, (key, rendered)


def test_expected_components(running: tuple[AgentConfig, ControlReport]) -> None:
    config, _ = running
    components = _components(config)
    names = {component["name"] for component in components.values()}
    assert {"SoC", "Pack voltage", "Battery current", "PV power", "Load power"} <= names
    assert {"Charge allowed", "Load allowed", "Problem"} <= names
    soc = components[f"sbms_{AGENT_ID}_soc"]
    assert (soc["unit_of_meas"], soc["dev_cla"], soc["stat_cla"]) == ("%", "battery", "measurement")
    cells = [c for c in components.values() if re.fullmatch(r"Cell \d+ voltage", c["name"])]
    assert len(cells) == config.control.cell_count
    assert all(cell["en"] is False for cell in cells)
    assert all("en" not in c for c in components.values() if c not in cells)
    problem = components[f"sbms_{AGENT_ID}_problem"]
    assert (problem["p"], problem["dev_cla"]) == ("binary_sensor", "problem")
    outputs = [c for c in components.values() if c["name"].startswith("Output ")]
    assert len(outputs) == len(config.control.outputs)
    assert components[f"sbms_{AGENT_ID}_time_to_empty_s"]["dev_cla"] == "duration"


def test_energy_sensors_fit_the_energy_dashboard(
    running: tuple[AgentConfig, ControlReport],
) -> None:
    config, report = running
    state = json.loads(encode(state_payload(report)))
    energy = [c for c in _components(config).values() if c.get("dev_cla") == "energy"]
    assert {c["name"] for c in energy} == {
        "Battery energy in",
        "Battery energy out",
        "PV energy",
        "Load energy",
    }
    for component in energy:
        assert component["stat_cla"] == "total_increasing"
        assert component["unit_of_meas"] == "kWh"
        assert "/ 1000" in component["val_tpl"]
        rendered = _render(component["val_tpl"], state)
        if rendered != "checked":
            key = re.search(r"counters\.(\w+)", component["val_tpl"])
            assert key is not None
            assert float(rendered) == pytest.approx(state["counters"][key[1]] / 1000, abs=1e-4)


def test_soc_uncertainty_sensor(running: tuple[AgentConfig, ControlReport]) -> None:
    config, report = running
    component = _components(config)[f"sbms_{AGENT_ID}_soc_uncertainty"]
    assert component["name"] == "SoC uncertainty"
    assert component["default_entity_id"] == f"sensor.sbms_{AGENT_ID}_soc_uncertainty"
    assert (component["unit_of_meas"], component["stat_cla"]) == ("%", "measurement")
    assert (component["sug_dsp_prc"], component["ent_cat"]) == (1, "diagnostic")
    assert "dev_cla" not in component  # not a battery level: no battery icon or gauge
    state = json.loads(encode(state_payload(report)))
    rendered = _render(component["val_tpl"], state)
    if rendered != "checked":
        assert float(rendered) == state["soc_uncertainty"]
        assert _render(component["val_tpl"], {**state, "soc_uncertainty": None}) == "None"


def test_no_soc_uncertainty_sensor_for_a_stock_sbms() -> None:
    names = {c["name"] for c in _components(_system().config, "sbms0").values()}
    assert "SoC" in names
    assert "SoC uncertainty" not in names


def test_pv_components_need_a_pv_shunt() -> None:
    system = _system(pv_shunt_rating=None)
    components = _components(system.config)
    names = {component["name"] for component in components.values()}
    assert not names & {"PV current", "PV power", "Load current", "Load power", "PV energy"}
    assert "Load energy" in names  # the battery's discharge is still counted


def test_dual_pv_level_only_with_a_type_6_output() -> None:
    assert "Dual PV level" not in {c["name"] for c in _components(_system().config).values()}
    dual = _system(pv_secondary=BoxSpec().pv_primary)
    assert "Dual PV level" in {c["name"] for c in _components(dual.config).values()}


def test_temperatures_that_exist() -> None:
    config = _system().config
    temperature_names = {
        c["name"]
        for c in _components(config, "sbms0").values()
        if c.get("dev_cla") == "temperature"
    }
    assert temperature_names == {"Internal temperature", "Battery temperature"}


def test_external_temperature_2_only_once_read() -> None:
    """Issue 20: a DIY box's xT2 is optional and its wiring cannot say whether a sensor is
    fitted: no entity forever unknown, but one as soon as the input has read a value."""
    config = _system().config
    names = {c["name"] for c in _components(config).values()}
    assert "External temperature 2" not in names
    assert {"Internal temperature", "Battery temperature"} <= names
    read = {c["name"] for c in _components(config, read=frozenset({"external2"})).values()}
    assert "External temperature 2" in read
    # A stock SBMS0 has no xT2 whatever it reads.
    sbms0 = _components(config, "sbms0", frozenset({"external2"})).values()
    assert "External temperature 2" not in {c["name"] for c in sbms0}


def test_heater_tank_temperature_when_its_input_is_configured() -> None:
    """Issue 19: `diversion.tank_temperature` says a tank sensor is fitted, so its entity
    comes at once (no wait for a first reading) and renders the state's `heater_tank`."""
    system = _system(wiring=OutputWiring(heat_primary_pin=5), heat=HeatPathSpec())
    key = f"sbms_{AGENT_ID}_temperature_heater_tank"
    assert key not in _components(system.config)  # no tank sensor configured
    diversion = dataclasses.replace(system.config.control.diversion, tank_temperature="external2")
    config = dataclasses.replace(
        system.config, control=dataclasses.replace(system.config.control, diversion=diversion)
    )
    tank = _components(config)[key]
    # Issue 20: xT2 reads the tank, so it is the tank's entity only, read or not (it was
    # offered twice: External temperature 2 too). A box whose xT2 reads no tank keeps it.
    xt2 = f"sbms_{AGENT_ID}_temperature_external2"
    assert xt2 not in _components(config, read=frozenset({"external2"}))
    assert xt2 in _components(system.config, read=frozenset({"external2"}))
    assert (tank["name"], tank["dev_cla"], tank["unit_of_meas"], tank["sug_dsp_prc"]) == (
        "Heater tank temperature",
        "temperature",
        "°C",
        1,
    )
    assert "ent_cat" not in tank  # the tank is what the user watches, not a diagnostic
    assert tank["default_entity_id"] == f"sensor.sbms_{AGENT_ID}_heater_tank_temperature"
    assert key not in _components(config, "sbms0")  # a stock SBMS has no xT2
    report = system.run(10.0)
    assert report is not None
    assert report.measurement is not None
    measured = dataclasses.replace(report.measurement, external_temperatures=(25.0, 52.34))
    state = json.loads(
        encode(
            state_payload(
                dataclasses.replace(report, measurement=measured), tank_temperature="external2"
            )
        )
    )
    rendered = _render(tank["val_tpl"], state)
    if rendered != "checked":
        assert float(rendered) == 52.3
        assert _render(tank["val_tpl"], {**state, "measurement_ok": False}) == "None"


def test_pv_energy_per_array_on_a_dual_pv_box() -> None:
    """Issue 20: each array's PV energy as a solar source for the Energy dashboard, read
    from a real state's `pv_arrays_wh`; none on a box with one array."""
    system = _system(pv_secondary=BoxSpec().pv_primary, start=BoxSpec().start + 11 * 3600)
    report = system.run(600.0)
    assert report is not None
    state = json.loads(encode(state_payload(report)))
    assert set(state["pv_arrays_wh"]) == {"extio4", "extio5"}
    assert 0.0 < sum(state["pv_arrays_wh"].values()) <= state["counters"]["pv_wh"]
    components = _components(system.config)
    for array in ("extio4", "extio5"):
        energy = components[f"sbms_{AGENT_ID}_pv_{array}_energy"]
        assert (energy["name"], energy["dev_cla"], energy["stat_cla"]) == (
            f"PV energy {array}",
            "energy",
            "total_increasing",
        )
        assert (energy["unit_of_meas"], energy["sug_dsp_prc"]) == ("kWh", 2)
        rendered = _render(energy["val_tpl"], state)
        if rendered != "checked":
            expected = state["pv_arrays_wh"][array] / 1000
            assert float(rendered) == pytest.approx(expected, abs=1e-4)
    single = {c["name"] for c in _components(_system().config).values()}
    assert not any(name.startswith("PV energy ") for name in single)


def test_diversion_components_on_a_box_with_a_heat_path() -> None:
    """Issue 19: diverted energy for the Energy dashboard, diversion and surplus power, and
    surplus available, rendered from a real state while the box diverts."""
    system = _system(
        start=BoxSpec().start + 11 * 3600,
        initial_soc=0.99,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(),
    )
    report = system.run(1200.0)
    assert report is not None
    assert report.outputs["heat1"]
    state = json.loads(encode(state_payload(report)))
    components = _components(system.config)
    energy = components[f"sbms_{AGENT_ID}_diverted_energy"]
    assert (energy["name"], energy["dev_cla"], energy["stat_cla"], energy["unit_of_meas"]) == (
        "Diverted energy",
        "energy",
        "total_increasing",
        "kWh",
    )
    assert energy["default_entity_id"] == f"sensor.sbms_{AGENT_ID}_diverted_energy"
    power = components[f"sbms_{AGENT_ID}_diversion_power"]
    surplus = components[f"sbms_{AGENT_ID}_surplus_power"]
    available = components[f"sbms_{AGENT_ID}_surplus_available"]
    assert (power["dev_cla"], surplus["dev_cla"], available["p"]) == (
        "power",
        "power",
        "binary_sensor",
    )
    if _render(energy["val_tpl"], state) == "checked":
        return  # no jinja2 here: the key names were checked
    wh = state["diversion"]["counters"]["diverted_wh"]
    assert float(_render(energy["val_tpl"], state)) == pytest.approx(wh / 1000, abs=1e-4)
    assert float(_render(power["val_tpl"], state)) == state["diversion"]["power_w"] > 100.0
    assert _render(available["val_tpl"], state) == "ON"
    stale = {**state, "measurement_ok": False}
    assert _render(power["val_tpl"], stale) == "None"
    assert _render(available["val_tpl"], stale) == "OFF"


def test_no_diversion_components_without_a_diversion() -> None:
    config = dataclasses.replace(simulated_config(BoxSpec()), agent_id=AGENT_ID)
    names = {component["name"] for component in _components(config).values()}
    assert not names & {"Diverted energy", "Diversion power", "Surplus power", "Surplus available"}


def test_every_numeric_sensor_has_a_display_precision() -> None:
    """Issue 20: no 15-decimal states on the dashboard. Numeric: a unit or a state class."""
    dual = _system(pv_secondary=BoxSpec().pv_primary)
    for config, source in ((dual.config, "diy"), (_system().config, "sbms0")):
        numeric = {
            key: component
            for key, component in _components(config, source).items()
            if component["p"] == "sensor"
            and ("unit_of_meas" in component or "stat_cla" in component)
        }
        assert len(numeric) > 20
        missing = sorted(
            key for key, component in numeric.items() if "sug_dsp_prc" not in component
        )
        assert not missing


def test_no_battery_temperature_without_its_thermistor() -> None:
    config = _system().config
    config = dataclasses.replace(
        config, control=dataclasses.replace(config.control, battery_thermistor=False)
    )
    read = frozenset({"external2"})
    names = {
        c["name"]
        for c in _components(config, read=read).values()
        if c.get("dev_cla") == "temperature"
    }
    assert names == {"Internal temperature", "External temperature 2"}


def test_prefix_comes_from_the_settings() -> None:
    config = _system().config
    config = dataclasses.replace(
        config, mqtt=MqttSettings(host="h", ha_discovery=True, ha_discovery_prefix="ha/site1")
    )
    topic, _ = discovery_payload(config, TOPICS, "sn", "diy")
    assert topic == f"ha/site1/device/{AGENT_ID}/config"
    with pytest.raises(ValueError, match="ha_discovery_prefix"):
        MqttSettings(host="h", ha_discovery_prefix="ha/#")


# ---------------------------------------------------------------------------------------------
# Against mosquitto
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running_broker:
        yield running_broker


def _recording(broker: MosquittoBroker) -> contextlib.AbstractAsyncContextManager[AsyncWatcher]:
    """A client like Home Assistant: records everything under homeassistant/# and sbms/#."""
    return AsyncWatcher(broker, ["homeassistant/#", "sbms/#"]).running()


@contextlib.asynccontextmanager
async def _agent(broker: MosquittoBroker, *, ha_discovery: bool) -> AsyncIterator[MqttLink]:
    """The real wiring: build_link with a RemoteControl over a simulated box."""
    system = _system()
    report = system.run(5.0)
    assert report is not None
    settings = MqttSettings(
        host=broker.host,
        port=broker.port,
        agent_id=AGENT_ID,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
        ha_discovery=ha_discovery,
    )
    remote = RemoteControl(system.agent, system.config, None, system.box.now)
    link = build_link(settings, remote, Identity("simulator", "sim-1"))
    link.offer_report(report)
    stop = asyncio.Event()
    task = asyncio.ensure_future(link.run(stop))
    try:
        yield link
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


DISCOVERY_TOPIC = f"homeassistant/device/{AGENT_ID}/config"


async def test_discovery_is_retained_and_republished_when_home_assistant_starts(
    broker: MosquittoBroker,
) -> None:
    async with _agent(broker, ha_discovery=True):
        async with _recording(broker) as early:
            first = await early.wait_count(DISCOVERY_TOPIC, 1)
        payload = json.loads(first[0].payload)
        assert payload["o"]["name"] == "sbms-agent"
        assert all(c["stat_t"] == TOPICS.state for c in payload["cmps"].values())

        # A client that connects later gets it retained.
        async with _recording(broker) as late:
            retained = await late.wait_count(DISCOVERY_TOPIC, 1)
            assert retained[0].retain
            # Home Assistant's birth message: the agent publishes discovery again.
            assert late.client is not None
            await late.client.publish("homeassistant/status", b"online", qos=1)
            again = await late.wait_count(DISCOVERY_TOPIC, 2)
            assert json.loads(again[-1].payload) == payload
            # Anything else on the status topic (HA going offline) is ignored.
            await late.client.publish("homeassistant/status", b"offline", qos=1)
            await late.client.publish("homeassistant/status", b"online", qos=1)
            await late.wait_count(DISCOVERY_TOPIC, 3)
            await asyncio.sleep(0.3)
            assert len(late.on(DISCOVERY_TOPIC)) == 3


async def test_nothing_under_homeassistant_without_discovery(broker: MosquittoBroker) -> None:
    async with _recording(broker) as recorder, _agent(broker, ha_discovery=False):
        await recorder.wait_count(f"sbms/{AGENT_ID}/config", 1)
        await recorder.wait_count(f"sbms/{AGENT_ID}/state", 1)
        assert recorder.client is not None
        await recorder.client.publish("homeassistant/status", b"online", qos=1)
        await asyncio.sleep(0.5)
    assert [m.topic for m in recorder.messages if m.topic.startswith("homeassistant/")] == [
        "homeassistant/status"
    ]


async def test_discovery_adds_external_temperature_2_once_it_reads(
    broker: MosquittoBroker,
) -> None:
    """The simulated box has no xT2 sensor: no entity; a report where xT2 reads (a sensor
    plugged in) sends discovery again, with the entity."""
    async with _agent(broker, ha_discovery=True) as link, _recording(broker) as watcher:
        first = json.loads((await watcher.wait_count(DISCOVERY_TOPIC, 1))[0].payload)
        names = {c["name"] for c in first["cmps"].values()}
        assert "Internal temperature" in names
        assert "External temperature 2" not in names
        report = link._outbox._latest
        assert report is not None
        assert report.measurement is not None
        measured = dataclasses.replace(report.measurement, external_temperatures=(25.0, 41.5))
        link.offer_report(dataclasses.replace(report, measurement=measured))
        again = json.loads((await watcher.wait_count(DISCOVERY_TOPIC, 2))[-1].payload)
        assert "External temperature 2" in {c["name"] for c in again["cmps"].values()}
        assert set(first["cmps"]) < set(again["cmps"])  # nothing removed
