"""Topics and payload builders of protocol v1."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from edge_agent.config import default_config
from edge_agent.control.model import (
    ControlEvent,
    ControlReport,
    EnergyCounters,
    EventKind,
    Fault,
    Interlock,
    Measurement,
)
from edge_agent.mqtt.payloads import (
    announce_payload,
    config_payload,
    encode,
    event_payload,
    result_payload,
    state_payload,
)
from edge_agent.mqtt.topics import Topics


def _measurement(**changes: object) -> Measurement:
    base = Measurement(
        timestamp=100.0,
        cell_voltages=(3.3012, 3.2996, 3.3101, 3.305),
        battery_current=12.3456,
        pv_current=15.0,
        internal_temperature=25.04,
        external_temperatures=(21.26, None),
        balancing=(False, True, False, False),
        monitor_flags=frozenset({"CHING", "CH_PRSNT"}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _report(measurement: Measurement | None = None, **changes: object) -> ControlReport:
    base = ControlReport(
        timestamp=100.0,
        outputs={"extio3": True, "extio4": False},
        soc=55.55,
        remaining_ah=55.5512,
        capacity_ah=100.0,
        time_to_full_s=1234.6,
        time_to_empty_s=None,
        charge_allowed=False,
        load_allowed=True,
        faults=frozenset({Fault.OVER_TEMPERATURE}),
        interlocks=frozenset({Interlock.INTERNAL_OVER_TEMPERATURE, Interlock.HVD}),
        dual_pv_level=None,
        counters=EnergyCounters(battery_in_ah=1.23456, battery_in_wh=16.789),
        events=(),
        measurement=measurement,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- topics ----------------------------------------------------------------------------------


def test_topics() -> None:
    topics = Topics("sbms", "shed")
    assert topics.status == "sbms/shed/status"
    assert topics.announce == "sbms/shed/announce"
    assert topics.state == "sbms/shed/state"
    assert topics.config == "sbms/shed/config"
    assert topics.config_set == "sbms/shed/config/set"
    assert topics.config_result == "sbms/shed/config/result"
    assert topics.event == "sbms/shed/event"
    assert topics.command("set_soc") == "sbms/shed/cmd/set_soc"
    assert topics.command_result("set_soc") == "sbms/shed/cmd/set_soc/result"
    assert topics.command_wildcard == "sbms/shed/cmd/+"


def test_multi_level_base() -> None:
    assert Topics("site1/sbms", "a").state == "site1/sbms/a/state"


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("sbms/shed/cmd/set_soc", "set_soc"),
        ("sbms/shed/cmd/unknown-thing", "unknown-thing"),
        ("sbms/shed/cmd/set_soc/result", None),
        ("sbms/shed/cmd/", None),
        ("sbms/other/cmd/set_soc", None),
        ("sbms/shed/config/set", None),
        ("sbms/shed/cmd/with space", None),
    ],
)
def test_parse_command_topic(topic: str, name: str | None) -> None:
    assert Topics("sbms", "shed").parse_command_topic(topic) == name


@pytest.mark.parametrize(("base", "agent_id"), [("", "a"), ("a//b", "x"), ("s", "a/b"), ("#", "a")])
def test_bad_topic_levels_are_refused(base: str, agent_id: str) -> None:
    with pytest.raises(ValueError, match="level"):
        Topics(base, agent_id)


def test_bad_command_name_is_refused() -> None:
    with pytest.raises(ValueError, match="command name"):
        Topics().command("a/b")


# --- state -----------------------------------------------------------------------------------


def test_state_rounds_and_derives() -> None:
    payload = state_payload(_report(_measurement()))
    assert payload["soc"] == round(55.55, 1)
    assert payload["cells"] == [3.301, 3.3, 3.31, 3.305]
    assert payload["voltage"] == round(3.3012 + 3.2996 + 3.3101 + 3.305, 2)
    assert payload["battery_current"] == 12.35
    assert payload["load_current"] == pytest.approx(2.65, abs=0.01)
    assert payload["pv_power"] == round(15.0 * (3.3012 + 3.2996 + 3.3101 + 3.305), 1)
    assert payload["cell_delta"] == round(3.3101 - 3.2996, 3)
    assert payload["temperatures"] == {"internal": 25.0, "battery": 21.3, "external2": None}
    assert payload["flags"] == ["CHING", "CH_PRSNT"]
    assert payload["faults"] == ["over_temperature"]
    assert payload["interlocks"] == ["hvd", "internal_over_temperature"]
    assert payload["time_to_full_s"] == 1235
    assert payload["counters"]["battery_in_ah"] == 1.235
    assert payload["counters"]["battery_in_wh"] == 16.8
    assert payload["measurement_ok"] is True


@pytest.mark.parametrize(("soc", "published"), [(100.157, 100.0), (-0.4, 0.0), (99.96, 100.0)])
def test_state_soc_is_clamped_to_0_100(soc: float, published: float) -> None:
    assert state_payload(_report(_measurement(), soc=soc))["soc"] == published


def test_state_carries_the_soc_uncertainty_rounded_like_the_soc() -> None:
    payload = state_payload(_report(_measurement(), soc_uncertainty=3.14159))
    assert payload["soc_uncertainty"] == 3.1
    assert json.loads(encode(payload))["soc_uncertainty"] == 3.1


def test_state_soc_uncertainty_is_null_when_not_estimated() -> None:
    payload = state_payload(_report(_measurement()))  # soc_uncertainty defaults to None
    assert "soc_uncertainty" in payload
    assert json.loads(encode(payload))["soc_uncertainty"] is None


def test_state_labels_the_tank_input_as_the_heater_tank() -> None:
    """Issue 19: the input `diversion.tank_temperature` names is also `heater_tank`."""
    measured = _measurement(external_temperatures=(21.26, 48.04))
    payload = state_payload(_report(measured), tank_temperature="external2")
    assert payload["temperatures"] == {
        "internal": 25.0,
        "battery": 21.3,
        "external2": 48.0,
        "heater_tank": 48.0,
    }
    assert "heater_tank" not in state_payload(_report(measured))["temperatures"]
    unread = state_payload(_report(None), tank_temperature="external2")["temperatures"]
    assert unread["heater_tank"] is None


def test_state_without_pv_shunt_has_no_load() -> None:
    payload = state_payload(_report(_measurement(pv_current=None)))
    assert payload["pv_current"] is None
    assert payload["load_current"] is None
    assert payload["load_power"] is None


def test_load_current_never_negative() -> None:
    payload = state_payload(_report(_measurement(pv_current=1.0, battery_current=5.0)))
    assert payload["load_current"] == 0.0


def test_state_uses_the_shunt_bus_voltage_when_present() -> None:
    payload = state_payload(_report(_measurement(pack_voltage=13.2049)))
    assert payload["voltage"] == 13.2


def test_state_without_measurement() -> None:
    payload = state_payload(_report(None))
    assert payload["voltage"] is None
    assert payload["cells"] == []
    assert payload["temperatures"] == {"internal": None, "battery": None, "external2": None}
    assert payload["measurement_ok"] is False


def test_stale_measurement_is_not_ok() -> None:
    report = _report(_measurement(), interlocks=frozenset({Interlock.MEASUREMENT_STALE}))
    assert state_payload(report)["measurement_ok"] is False


def test_state_size_is_small() -> None:
    size = len(encode(state_payload(_report(_measurement(cell_voltages=(3.3,) * 8)))))
    assert size < 1000


# --- others ----------------------------------------------------------------------------------


def test_announce_defaults() -> None:
    config = default_config()
    payload = announce_payload(config, "diy", "serial-1", ["set_soc"])
    assert payload["protocol_version"] == 1
    assert payload["agent_id"] == "sbms"
    assert payload["measurements"] == {
        "pv_current": False,
        "temperatures": ["internal", "battery", "external2"],
    }
    assert payload["capabilities"] == {
        "config_set": True,
        "commands": ["set_soc"],
        "history": False,
    }
    assert [o["type_name"] for o in payload["outputs"]] == ["lvd", "hvd", "unused", "fault"]
    assert payload["topics"]["state"] == "sbms/sbms/state"
    assert payload["topics"]["command"] == "sbms/sbms/cmd/{name}"


def test_announce_stock_sbms_is_read_only() -> None:
    payload = announce_payload(default_config(), "sbms0", "x", [], topics=Topics("b", "c"))
    assert payload["capabilities"]["config_set"] is False
    assert payload["measurements"]["temperatures"] == ["internal", "battery"]
    assert payload["topics"]["status"] == "b/c/status"


def test_announce_refuses_unknown_source() -> None:
    with pytest.raises(ValueError, match="source"):
        announce_payload(default_config(), "cloud", "x", [])


def test_config_payload_hides_paths() -> None:
    payload = config_payload(default_config(), 2)
    assert "storage" not in payload
    assert "mqtt" not in payload
    assert payload["config_revision"] == 2
    assert payload["thresholds"]["hvd"] == 3.6


def test_event_payload() -> None:
    event = ControlEvent(EventKind.DUAL_PV_LEVEL, 5.12345, {"from": 1, "to": 2})
    assert event_payload(event) == {
        "kind": "dual_pv_level",
        "timestamp": 5.123,
        "detail": {"from": 1, "to": 2},
    }


def test_soc_sync_event_is_clamped_and_rounded_like_the_state() -> None:
    """Issue 20: an internal 100.157 % went out in a soc_sync event."""
    event = ControlEvent(EventKind.SOC_SYNC, 7.0, {"to": 100.0, "from": 100.157, "reason": "hvd"})
    assert event_payload(event)["detail"] == {"to": 100.0, "from": 100.0, "reason": "hvd"}
    event = ControlEvent(EventKind.SOC_SYNC, 7.0, {"to": 12.3456, "from": -1.5, "reason": "lvd"})
    assert event_payload(event)["detail"] == {"to": 12.3, "from": 0.0, "reason": "lvd"}


def test_trip_event_names_its_cell_at_1_mv() -> None:
    event = ControlEvent(EventKind.HVD_TRIP, 7.0, {"cell": 3, "voltage": 3.61234})
    assert event_payload(event)["detail"] == {"cell": 3, "voltage": 3.612}


def test_announce_has_no_battery_temperature_without_its_thermistor() -> None:
    config = default_config()
    config = dataclasses.replace(
        config, control=dataclasses.replace(config.control, battery_thermistor=False)
    )
    payload = announce_payload(config, "diy", "serial-1", [])
    assert payload["measurements"]["temperatures"] == ["internal", "external2"]


def test_result_payload() -> None:
    accepted = result_payload("config/set", "r1", [], 10.0, config_revision=4)
    assert accepted == {
        "request_id": "r1",
        "command": "config/set",
        "status": "accepted",
        "errors": [],
        "timestamp": 10.0,
        "config_revision": 4,
    }
    rejected = result_payload("set_soc", None, [("soc", "must be between 0 and 100")], 10.0)
    assert rejected["status"] == "rejected"
    assert rejected["errors"] == [{"field": "soc", "reason": "must be between 0 and 100"}]
    assert "config_revision" not in rejected


def test_encode_is_compact_utf8_without_nan() -> None:
    data = encode({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}, "e": "°C"})
    assert data == '{"a":null,"b":[null,1.5],"c":{"d":null},"e":"°C"}'.encode()
    assert json.loads(data)["e"] == "°C"


def test_encode_state_with_nan_measurement() -> None:
    payload = state_payload(_report(_measurement(internal_temperature=math.nan)))
    assert json.loads(encode(payload))["temperatures"]["internal"] is None
