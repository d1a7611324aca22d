"""EXTIO output banks: MCP23008 against its simulated chip, libgpiod against a fake module."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from enum import Enum
from types import SimpleNamespace
from typing import Any

import pytest

from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.gpio import GpiodOutputs, GpioError
from edge_agent.drivers.mcp23008 import Mcp23008Outputs
from edge_agent.drivers.outputs import OutputBank
from edge_agent.simulator.mcp23008 import SimMcp23008
from edge_agent.simulator.smbus import FakeSMBus

ADDRESS = 0x20
PINS = {"extio3": (0, False), "extio4": (1, True), "extio6": (5, False)}


class CountingBus(FakeSMBus):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[tuple[int, int]] = []

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self.writes.append((register, value))
        super().write_byte_data(i2c_addr, register, value)


def mcp() -> tuple[SimMcp23008, CountingBus, Mcp23008Outputs]:
    chip = SimMcp23008()
    bus = CountingBus({ADDRESS: chip}, name="i2c-1")
    return chip, bus, Mcp23008Outputs(bus, bus.name, ADDRESS, PINS)


def test_mcp23008_start_is_glitch_free_and_all_off() -> None:
    chip, bus, bank = mcp()
    bank.start()
    assert chip.glitches == 0
    assert [register for register, _ in bus.writes] == [0x0A, 0x00]  # OLAT before IODIR
    levels = chip.output_levels()
    assert levels[0] is False  # active-high output OFF: low
    assert levels[1] is True  # active-low output OFF: high
    assert levels[5] is False
    assert [chip.is_output(pin) for pin in range(8)] == [
        True, True, False, False, False, True, False, False,
    ]  # fmt: skip


def test_the_simulated_chip_catches_iodir_before_olat() -> None:
    chip = SimMcp23008()
    chip.write(0x00, b"\xfc")  # outputs before any deliberate latch value
    assert chip.glitches == 1


def test_mcp23008_polarity_and_single_write_per_apply() -> None:
    chip, bus, bank = mcp()
    bank.start()
    bus.writes.clear()
    bank.apply({"extio3": True, "extio4": True, "extio6": False})
    assert len(bus.writes) == 1
    levels = chip.output_levels()
    assert levels[0] is True  # active-high ON: high
    assert levels[1] is False  # active-low ON: low (sinks the LED)
    assert levels[5] is False
    bank.apply({"extio4": False})
    assert chip.output_levels()[1] is True
    assert chip.output_levels()[0] is True  # untouched output keeps its state


def test_mcp23008_release_makes_every_pin_an_input() -> None:
    chip, _, bank = mcp()
    bank.start()
    bank.apply({"extio3": True, "extio6": True})
    bank.release()
    assert not any(chip.is_output(pin) for pin in range(8))
    assert chip.output_levels() == (False,) * 8
    with pytest.raises(RuntimeError, match="before start"):
        bank.apply({"extio3": True})


def test_mcp23008_rejects_unknown_outputs_and_sets_up_a_reset_chip_again() -> None:
    _, bus, bank = mcp()
    bank.start()
    bank.apply({"extio3": True})
    with pytest.raises(KeyError, match="extio9"):
        bank.apply({"extio9": True})
    fresh = SimMcp23008()
    bus.attach(ADDRESS, fresh)  # brown-out: the chip is back at power-on state, pins inputs
    bus.writes.clear()
    bank.apply({"extio6": True})
    assert bank.resets_recovered == 1
    assert fresh.glitches == 0  # latch written again before the pins became outputs
    assert [register for register, _ in bus.writes] == [0x0A, 0x0A, 0x00]
    levels = fresh.output_levels()
    assert (levels[0], levels[1], levels[5]) == (True, True, True)  # every state kept


class _StuckLatch(SimMcp23008):
    """A chip whose output latch ignores writes (a damaged part, or another master)."""

    def write(self, register: int, data: bytes) -> None:
        if register != 0x0A:
            super().write(register, data)


def test_mcp23008_verify_catches_a_latch_that_does_not_take() -> None:
    _, bus, bank = mcp()
    bank.start()
    bus.attach(ADDRESS, _StuckLatch())
    with pytest.raises(DeviceError, match=r"i2c-1 address 0x20: MCP23008 verify failed"):
        bank.apply({"extio3": True})


def test_mcp23008_bus_error() -> None:
    _, bus, bank = mcp()
    bus.fail(ADDRESS)
    with pytest.raises(DeviceError, match=r"register 0x0A write failed"):
        bank.start()


def test_mcp23008_pin_validation() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Mcp23008Outputs(FakeSMBus(), "i2c-1", ADDRESS, {"a": (1, False), "b": (1, True)})


# -- libgpiod ------------------------------------------------------------------------------
# The real library needs a kernel GPIO chip, which CI machines do not have, so these tests
# inject a small fake `gpiod` module with the v2 API surface the driver uses.


class Direction(Enum):
    INPUT = 1
    OUTPUT = 2


class Value(Enum):
    INACTIVE = 0
    ACTIVE = 1


class LineSettings:
    def __init__(
        self,
        direction: Direction = Direction.INPUT,
        output_value: Value = Value.INACTIVE,
        active_low: bool = False,
    ) -> None:
        self.direction = direction
        self.output_value = output_value
        self.active_low = active_low


class FakeRequest:
    def __init__(self, path: str, consumer: str, config: dict[Any, LineSettings]) -> None:
        self.path = path
        self.consumer = consumer
        self.config = config
        self.values = {offset: settings.output_value for offset, settings in config.items()}
        self.set_calls: list[dict[int, Value]] = []
        self.reconfigured: dict[Any, LineSettings] = {}
        self.released = False

    def set_values(self, values: dict[int, Value]) -> None:
        self.set_calls.append(dict(values))
        self.values.update(values)

    def reconfigure_lines(self, config: dict[Any, LineSettings]) -> None:
        self.reconfigured = config

    def release(self) -> None:
        self.released = True


LINE_NAMES = ["GPIO0", "GPIO1", "GPIO2", "GPIO3", "GPIO4", "GPIO5"]


class FakeChip:
    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> FakeChip:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def get_info(self) -> SimpleNamespace:
        label = {"/dev/gpiochip0": "pinctrl-rp1", "/dev/gpiochip4": "other"}[self.path]
        return SimpleNamespace(label=label, num_lines=len(LINE_NAMES))

    def get_line_info(self, offset: int) -> SimpleNamespace:
        return SimpleNamespace(name=LINE_NAMES[offset])

    def line_offset_from_id(self, line_id: str | int) -> int:
        if isinstance(line_id, int):
            if not 0 <= line_id < len(LINE_NAMES):
                raise ValueError("offset out of range")
            return line_id
        if line_id not in LINE_NAMES:
            raise OSError(2, "No such file or directory")
        return LINE_NAMES.index(line_id)


@pytest.fixture
def fake_gpiod(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    requests: list[FakeRequest] = []

    def request_lines(path: str, consumer: str, config: dict[Any, LineSettings]) -> FakeRequest:
        request = FakeRequest(path, consumer, config)
        requests.append(request)
        return request

    module = SimpleNamespace(
        Chip=FakeChip,
        LineSettings=LineSettings,
        line=SimpleNamespace(Direction=Direction, Value=Value),
        is_gpiochip_device=lambda path: path in ("/dev/gpiochip0", "/dev/gpiochip4"),
        request_lines=request_lines,
        requests=requests,
    )
    monkeypatch.setitem(sys.modules, "gpiod", module)
    monkeypatch.setattr(
        "edge_agent.drivers.gpio.glob.glob",
        lambda pattern: ["/dev/gpiochip4", "/dev/gpiochip0", "/dev/gpiochip99"],
    )
    return module


def only_request(fake_gpiod: SimpleNamespace) -> FakeRequest:
    requests: Iterable[FakeRequest] = fake_gpiod.requests
    (request,) = requests
    return request


def test_gpiod_request_by_label_and_line_name(fake_gpiod: SimpleNamespace) -> None:
    bank = GpiodOutputs("pinctrl-rp1", {"extio3": ("GPIO4", False), "extio4": (2, True)})
    request = only_request(fake_gpiod)
    assert request.path == "/dev/gpiochip0"
    assert request.consumer == "sbms-agent"
    assert set(request.config) == {4, 2}
    for offset, active_low in ((4, False), (2, True)):
        settings = request.config[offset]
        assert settings.direction is Direction.OUTPUT
        assert settings.output_value is Value.INACTIVE
        assert settings.active_low is active_low
    assert bank.names == ("extio3", "extio4")


def test_gpiod_apply_maps_states_to_logical_values(fake_gpiod: SimpleNamespace) -> None:
    bank = GpiodOutputs("/dev/gpiochip0", {"extio3": ("GPIO4", False), "extio4": (2, True)})
    request = only_request(fake_gpiod)
    bank.apply({"extio3": True, "extio4": False})
    assert request.set_calls == [{4: Value.ACTIVE, 2: Value.INACTIVE}]  # one call
    with pytest.raises(KeyError, match="extio7"):
        bank.apply({"extio7": True})


def test_gpiod_release_turns_everything_off_then_frees(fake_gpiod: SimpleNamespace) -> None:
    bank = GpiodOutputs("pinctrl-rp1", {"extio3": (1, False), "extio4": (3, True)})
    request = only_request(fake_gpiod)
    bank.apply({"extio3": True, "extio4": True})
    bank.release()
    assert request.values == {1: Value.INACTIVE, 3: Value.INACTIVE}
    ((offsets, settings),) = request.reconfigured.items()
    assert set(offsets) == {1, 3}
    assert settings.direction is Direction.INPUT
    assert request.released
    with pytest.raises(RuntimeError, match="after release"):
        bank.apply({"extio3": True})


def test_gpiod_errors_name_chip_and_line(fake_gpiod: SimpleNamespace) -> None:
    with pytest.raises(GpioError, match=r"GPIO chip 'pinctrl-rp1' has no line 'GPIO99'.*GPIO5"):
        GpiodOutputs("pinctrl-rp1", {"extio3": ("GPIO99", False)})
    with pytest.raises(GpioError, match=r"no GPIO chip labelled 'nope'; chips: .*'other'"):
        GpiodOutputs("nope", {"extio3": (1, False)})
    with pytest.raises(GpioError, match="has no line 17"):
        GpiodOutputs("pinctrl-rp1", {"extio3": (17, False)})
    assert fake_gpiod.requests == []


def test_output_banks_satisfy_the_protocol(fake_gpiod: SimpleNamespace) -> None:
    banks: list[OutputBank] = [
        mcp()[2],
        GpiodOutputs("pinctrl-rp1", {"extio3": (1, False)}),
    ]
    assert [bank.names for bank in banks] == [("extio3", "extio4", "extio6"), ("extio3",)]
