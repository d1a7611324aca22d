"""Nothing sent over MQTT widens what protects the cells: the envelope, the file's remote
window and the wiring hold against every request an attacker with Home Assistant's broker
credentials got accepted before (issue 13). Each is rejected naming the field, and nothing
is applied: configuration, revision and overlay stay as they were."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig, effective_remote_window, parse_config
from edge_agent.control.envelope import Range, envelope_problems
from edge_agent.control.model import Interlock
from edge_agent.control.settings import OutputType, Wiring
from edge_agent.mqtt.handlers import RemoteResult
from edge_agent.runtime.remote import RemoteControl, load_effective_config
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import PvArraySpec
from edge_agent.storage.config_overlay import ConfigOverlay, overlay_path_for

# The simulated box's wiring: extio3 loads, extio4 the primary PV, extio5 the secondary PV
# (type 0 until a second array is fitted), extio6 the fault output.
LOADS, PV, PV2, FAULT = "extio3", "extio4", "extio5", "extio6"


@dataclasses.dataclass
class Rig:
    system: SimulatedSystem
    remote: RemoteControl
    overlay: ConfigOverlay

    @property
    def now(self) -> float:
        return self.system.box.now

    def config_set(self, changes: Any) -> RemoteResult:
        payload = json.dumps({"request_id": "attack", "config": changes}).encode()
        return self.remote.handle_config_set(payload, self.now)

    def command(self, name: str, **fields: Any) -> RemoteResult:
        return self.remote.handle_command(name, json.dumps(fields).encode(), self.now)

    def snapshot(self) -> tuple[AgentConfig, int, bytes | None]:
        path = self.overlay.path
        return (
            self.remote.config,
            self.remote.revision,
            (path.read_bytes() if path.exists() else None),
        )


def _rig(tmp_path: Path, config: AgentConfig | None = None, spec: BoxSpec | None = None) -> Rig:
    spec = spec or BoxSpec.for_cells(4, pv_secondary=PvArraySpec(panels_in_parallel=1))
    file_config = config or simulated_config(spec, state_path=tmp_path / "state.db")
    overlay = ConfigOverlay(overlay_path_for(tmp_path / "state.db"))
    effective, _ = load_effective_config(file_config, overlay)
    system = SimulatedSystem(spec, effective)
    system.run(3.0)
    rig = Rig(system, RemoteControl(system.agent, effective, overlay, system.box.now), overlay)
    # One accepted change first, so "unchanged" also means the overlay file as written.
    assert rig.config_set({"thresholds": {"hvd": 3.58}}).accepted
    return rig


# The requests issue 13 found accepted, each with the field its rejection must name.
ATTACKS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "charge output made a load output",
        {"outputs": {PV: {"type": 2}}},
        f"config.outputs.{PV}.type",
        "an output wired to charge may be type 0, 1, 3 or 6 (got 2)",
    ),
    (
        "fault output made unused",
        {"outputs": {FAULT: {"type": 0}}},
        f"config.outputs.{FAULT}.type",
        "an output wired to fault may be type 5 (got 0)",
    ),
    (
        "load output made a charge output",
        {"outputs": {LOADS: {"type": 1}}},
        f"config.outputs.{LOADS}.type",
        "an output wired to load may be type 0, 2 or 4 (got 1)",
    ),
    (
        "a second fault output",
        {"outputs": {LOADS: {"type": 5}}},
        f"config.outputs.{LOADS}.type",
        "an output wired to load may be type 0, 2 or 4 (got 5)",
    ),
    (
        "wiring changed",
        {"outputs": {PV: {"wiring": "signal"}}},
        f"config.outputs.{PV}.wiring",
        "read-only over MQTT",
    ),
    ("hvd 3.70", {"thresholds": {"hvd": 3.70}}, "config.thresholds.hvd", "between 3.4 and 3.65 V"),
    ("hvd 4.29", {"thresholds": {"hvd": 4.29}}, "config.thresholds.hvd", "between 3.4 and 3.65"),
    ("ovlo 4.3", {"thresholds": {"ovlo": 4.3}}, "config.thresholds.ovlo", "between 3.6 and 3.8"),
    ("uvlo 2.0", {"thresholds": {"uvlo": 2.0}}, "config.thresholds.uvlo", "between 2.5 and 3 V"),
    ("lvd 2.05", {"thresholds": {"lvd": 2.05}}, "config.thresholds.lvd", "between 2.6 and 3.25"),
    (
        "ovlo a hair above hvd",
        {"thresholds": {"hvd": 3.6, "ovlo": 3.6000001}},
        "config.thresholds.hvd",
        "at least 0.05 V below thresholds.ovlo",
    ),
    (
        "a hysteresis of 1e-9 V",
        {"thresholds": {"hvd": 3.55, "hvd_reconnect": 3.55 - 1e-9, "eoc": 3.55}},
        "config.thresholds.hvd_reconnect",
        "at least 0.1 V below thresholds.hvd",
    ),
    (
        "no lockout release margin",
        {"thresholds": {"lockout_release_margin": 0}},
        "config.thresholds.lockout_release_margin",
        "between 0.02 and 0.5 V",
    ),
    (
        "charging at -40 C",
        {"temperature": {"charge_min": -40}},
        "config.temperature.charge_min",
        "between 0 and 20 C",
    ),
    (
        "charging at 124 C",
        {"temperature": {"charge_max": 124}},
        "config.temperature.charge_max",
        "between 20 and 55 C",
    ),
    (
        "board cut-off at 125 C",
        {"temperature": {"internal_cutoff": 125}},
        "config.temperature.internal_cutoff",
        "between 40 and 80 C",
    ),
    (
        "a hysteresis of a million degrees",
        {"temperature": {"charge_hysteresis": 1e6}},
        "config.temperature.charge_hysteresis",
        "between 1 and 10 C",
    ),
    (
        "balancing up to 4.3 V",
        {"balancing": {"max_cell": 4.3}},
        "config.balancing.max_cell",
        "between 3.3 and 3.65 V",
    ),
    (
        "capacity 1e308",
        {"battery": {"capacity_ah": 1e308}},
        "config.battery.capacity_ah",
        "between 1 and 10000 Ah",
    ),
    (
        "capacity 5e-324",
        {"battery": {"capacity_ah": 5e-324}},
        "config.battery.capacity_ah",
        "between 1 and 10000 Ah",
    ),
    (
        "rest current 1e10",
        {"soc": {"rest_current": 1e10}},
        "config.soc.rest_current",
        "between 0 and 5 A",
    ),
    (
        "the window itself",
        {"remote_window": {"thresholds": {"hvd": [3.0, 3.65]}}},
        "config.remote_window",
        "read-only over MQTT",
    ),
    (
        "the heartbeat",
        {"heartbeat": {"driver": "mcp23008", "address": 32, "pin": 6, "hold_s": 9}},
        "config.heartbeat",
        "read-only over MQTT",
    ),
    # Inside the envelope but outside the box's window (defaults: docs/safety.md).
    (
        "hvd inside the envelope, outside the window",
        {"thresholds": {"hvd": 3.65, "ovlo": 3.75}},
        "config.thresholds.hvd",
        "a remote change must stay within 3.45 to 3.6 V",
    ),
    (
        "a 30 s lvd delay... and 31",
        {"thresholds": {"lvd_delay_s": 31}},
        "config.thresholds.lvd_delay_s",
        "between 0 and 30 s",
    ),
    (
        "lvd delay below the window",
        {"thresholds": {"lvd_delay_s": 0.0}},
        "config.thresholds.lvd_delay_s",
        "a remote change must stay within 1 to 30 s",
    ),
    (
        "charge up to 50 C",
        {"temperature": {"charge_max": 50}},
        "config.temperature.charge_max",
        "a remote change must stay within 35 to 45 C",
    ),
]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [attack[1:] for attack in ATTACKS],
    ids=[attack[0] for attack in ATTACKS],
)
def test_each_attack_is_rejected_naming_the_field_and_changes_nothing(
    tmp_path: Path, changes: dict[str, Any], field: str, reason: str
) -> None:
    rig = _rig(tmp_path)
    before = rig.snapshot()
    controller_settings = rig.system.agent.controller.settings

    result = rig.config_set(changes)

    assert not result.accepted
    reasons = [text for name, text in result.errors if name == field]
    assert any(reason in text for text in reasons), result.errors
    assert rig.snapshot() == before
    assert rig.system.agent.controller.settings == controller_settings


def test_the_outputs_follow_their_wiring_after_an_accepted_type_change(tmp_path: Path) -> None:
    """A charge-wired output may become unused, high-SoC or dual PV; the fault output's
    type is fixed; an output wired to nothing stays off."""
    rig = _rig(tmp_path)
    assert rig.config_set({"outputs": {PV2: {"type": 3}}}).accepted
    assert rig.config_set({"outputs": {PV: {"type": 0}, LOADS: {"type": 4}}}).accepted
    types = {o.name: o.type for o in rig.remote.config.control.outputs}
    assert types == {
        LOADS: OutputType.LOW_SOC,
        PV: OutputType.UNUSED,
        PV2: OutputType.HIGH_SOC,
        FAULT: OutputType.FAULT,
    }
    wirings = {o.name: o.wiring for o in rig.remote.config.control.outputs}
    assert wirings == {
        LOADS: Wiring.LOAD,
        PV: Wiring.CHARGE,
        PV2: Wiring.CHARGE,
        FAULT: Wiring.FAULT,
    }


def test_an_output_wired_to_nothing_stays_unused(tmp_path: Path) -> None:
    """Without a second array, extio5 switches nothing: no type but 0 for it."""
    rig = _rig(tmp_path, spec=BoxSpec.for_cells(4))
    result = rig.config_set({"outputs": {PV2: {"type": 6}}})
    assert dict(result.errors) == {
        f"config.outputs.{PV2}.type": "an output wired to none may be type 0 (got 6)"
    }


@pytest.mark.parametrize(
    ("file_type", "requested", "reason"),
    [
        (OutputType.FAULT, 4, "lamp reports faults: only the configuration file can make it"),
        (OutputType.LOW_SOC, 5, "only the configuration file makes an output a fault output"),
    ],
)
def test_a_signal_output_never_enters_or_leaves_the_fault_type_remotely(
    tmp_path: Path, file_type: OutputType, requested: int, reason: str
) -> None:
    """A fault lamp wired as a signal: the file may give it any type, a remote client may
    neither take the fault type from it nor give it to another signal output."""
    spec = BoxSpec.for_cells(4)
    file_config = simulated_config(spec, state_path=tmp_path / "state.db")
    outputs = tuple(
        dataclasses.replace(o, type=file_type, wiring=Wiring.SIGNAL) if o.name == PV2 else o
        for o in file_config.control.outputs
    )
    file_config = dataclasses.replace(
        file_config, control=dataclasses.replace(file_config.control, outputs=outputs)
    )
    rig = _rig(tmp_path, file_config)
    before = rig.snapshot()
    result = rig.config_set({"outputs": {PV2: {"type": requested}}})
    assert [field for field, _ in result.errors] == [f"config.outputs.{PV2}.type"]
    assert reason.replace("lamp", PV2) in result.errors[0][1]
    assert rig.snapshot() == before
    assert rig.config_set({"outputs": {PV2: {"type": file_type}}}).accepted


def test_a_window_from_the_file_narrows_what_home_assistant_may_set(tmp_path: Path) -> None:
    spec = BoxSpec.for_cells(4)
    file_config = simulated_config(spec, state_path=tmp_path / "state.db")
    window = dict(effective_remote_window(file_config))
    window["thresholds.lvd"] = Range(2.95, 3.05, "V")
    rig = _rig(tmp_path, dataclasses.replace(file_config, remote_window=window))

    assert rig.config_set({"thresholds": {"lvd": 3.05}}).accepted
    result = rig.config_set({"thresholds": {"lvd": 3.10}})
    assert dict(result.errors) == {
        "config.thresholds.lvd": "a remote change must stay within 2.95 to 3.05 V "
        "(remote_window of this box's configuration file) (got 3.1)"
    }


def test_a_value_the_file_set_outside_the_window_may_stay_where_it_is(tmp_path: Path) -> None:
    """A file HVD of 3.62 (inside the envelope, outside the default window): Home Assistant
    can send the whole section back unchanged, but cannot move HVD anywhere but inside."""
    spec = BoxSpec.for_cells(4)
    file_config = simulated_config(spec, state_path=tmp_path / "state.db")
    cells = dataclasses.replace(file_config.control.cells, hvd=3.62)
    file_config = dataclasses.replace(
        file_config, control=dataclasses.replace(file_config.control, cells=cells)
    )
    overlay = ConfigOverlay(overlay_path_for(tmp_path / "state.db"))
    system = SimulatedSystem(spec, file_config)
    remote = RemoteControl(system.agent, file_config, overlay, system.box.now)
    section = dataclasses.asdict(file_config.control.cells)
    payload = json.dumps({"config": {"thresholds": section}}).encode()
    assert remote.handle_config_set(payload, system.box.now).accepted
    payload = json.dumps({"config": {"thresholds": {"hvd": 3.63}}}).encode()
    assert not remote.handle_config_set(payload, system.box.now).accepted
    payload = json.dumps({"config": {"thresholds": {"hvd": 3.6}}}).encode()
    assert remote.handle_config_set(payload, system.box.now).accepted


def test_the_capacity_window_does_not_ratchet(tmp_path: Path) -> None:
    """Doubling the capacity twice would double the window too if it were derived from the
    value in force; it is the file's, so the second doubling is refused."""
    rig = _rig(tmp_path)
    assert rig.config_set({"battery": {"capacity_ah": 200}}).accepted
    result = rig.config_set({"battery": {"capacity_ah": 400}})
    assert dict(result.errors) == {
        "config.battery.capacity_ah": "a remote change must stay within 50 to 200 Ah "
        "(remote_window of this box's configuration file) (got 400)"
    }


def test_a_saved_overlay_outside_a_narrowed_window_is_set_aside(tmp_path: Path) -> None:
    """The file's window narrowed after Home Assistant set HVD: the old overlay no longer
    fits and the box runs on its file."""
    rig = _rig(tmp_path)
    assert rig.remote.config.control.cells.hvd == 3.58
    narrowed = parse_config({"remote_window": {"thresholds": {"hvd": [3.50, 3.55]}}})
    file_config = dataclasses.replace(
        simulated_config(BoxSpec.for_cells(4), state_path=tmp_path / "state.db"),
        remote_window=narrowed.remote_window,
    )
    config, revision = load_effective_config(file_config, rig.overlay)
    assert config.control.cells.hvd == file_config.control.cells.hvd
    assert revision == 1
    assert not rig.overlay.path.exists()


def test_no_accepted_request_leaves_the_envelope(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    for changes in (
        {"thresholds": {"hvd": 3.6, "ovlo": 3.65}},
        {"thresholds": {"uvlo": 2.6, "lvd": 3.1, "lvd_reconnect": 3.25}},
        {"temperature": {"charge_min": 10, "discharge_min": 0, "discharge_max": 45}},
        {"battery": {"capacity_ah": 50}, "dual_pv": {"imax": 10}},
    ):
        assert rig.config_set(changes).accepted, changes
        assert envelope_problems(rig.remote.config.control) == []


def test_a_force_off_hold_uses_the_agents_clock(tmp_path: Path) -> None:
    """The simulated box runs in June 2026 whatever the wall clock says: a 60 s hold ends
    60 s later on that clock."""
    rig = _rig(tmp_path)
    assert rig.command("force_off", output=LOADS, seconds=60).accepted
    assert rig.system.agent.controller.snapshot().forced_off == {LOADS: rig.now + 60}
    report = rig.system.run(59.0)
    assert report is not None
    assert Interlock.FORCED_OFF in report.interlocks
    report = rig.system.run(2.0)
    assert report is not None
    assert report.forced_off == {}
    assert report.outputs[LOADS]
