"""EXTIO outputs on native GPIO lines through libgpiod v2 (`gpiod` >= 2.0.2).

Works on a Raspberry Pi 5 (RP1) where RPi.GPIO does not. The line request stays open for the
daemon's life: libgpiod gives no guarantee what a line does after release, so release() first
drives every line OFF and turns it into an input.
"""

from __future__ import annotations

import glob
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from edge_agent.drivers.outputs import check_known

DEFAULT_CONSUMER = "sbms-agent"


class GpioError(Exception):
    """A GPIO chip or line could not be found, requested or driven."""


def _gpiod() -> ModuleType:
    # Imported on use: the package only exists on Linux, and tests substitute a fake module.
    return importlib.import_module("gpiod")


class GpiodOutputs:
    """Outputs on one GPIO chip; implements `OutputBank`.

    chip: a /dev/gpiochipN path or a chip label (e.g. "pinctrl-rp1").
    lines: name -> (line offset or line name, active_low).
    """

    def __init__(
        self,
        chip: str,
        lines: Mapping[str, tuple[str | int, bool]],
        consumer: str = DEFAULT_CONSUMER,
    ) -> None:
        gpiod = _gpiod()
        self.names: tuple[str, ...] = tuple(lines)
        self._chip_path, self._chip_label = _find_chip(gpiod, chip)
        self._offsets = _resolve_lines(gpiod, self._chip_path, self._chip_label, lines)
        if len(set(self._offsets.values())) != len(self._offsets):
            raise GpioError(f"GPIO chip '{self._chip_label}': two outputs share a line")
        line = gpiod.line
        config = {
            self._offsets[name]: gpiod.LineSettings(
                direction=line.Direction.OUTPUT,
                output_value=line.Value.INACTIVE,  # OFF from the first instant
                active_low=active_low,
            )
            for name, (_, active_low) in lines.items()
        }
        try:
            self._request: Any = gpiod.request_lines(
                self._chip_path, consumer=consumer, config=config
            )
        except OSError as error:
            raise GpioError(
                f"GPIO chip '{self._chip_label}': requesting lines "
                f"{sorted(config)} failed (in use by another program?): {error}"
            ) from error

    def apply(self, states: Mapping[str, bool]) -> None:
        if self._request is None:
            raise RuntimeError("GpiodOutputs.apply() after release()")
        check_known(self.names, states, f"GPIO chip '{self._chip_label}'")
        value = _gpiod().line.Value
        values = {
            self._offsets[name]: value.ACTIVE if on else value.INACTIVE
            for name, on in states.items()
        }
        if not values:
            return
        try:
            self._request.set_values(values)
        except OSError as error:
            raise GpioError(
                f"GPIO chip '{self._chip_label}': set_values failed: {error}"
            ) from error

    def release(self) -> None:
        """Drive every line OFF, make it an input, then free the request."""
        request, self._request = self._request, None
        if request is None:
            return
        gpiod = _gpiod()
        offsets = tuple(self._offsets.values())
        try:
            request.set_values(dict.fromkeys(offsets, gpiod.line.Value.INACTIVE))
            request.reconfigure_lines(
                config={offsets: gpiod.LineSettings(direction=gpiod.line.Direction.INPUT)}
            )
        finally:
            request.release()


def _find_chip(gpiod: ModuleType, chip: str) -> tuple[str, str]:
    """(path, label) for a chip path or label."""
    if chip.startswith("/dev/"):
        if not gpiod.is_gpiochip_device(chip):
            raise GpioError(f"'{chip}' is not a GPIO chip device")
        return chip, _chip_label(gpiod, chip)
    labels: list[str] = []
    for path in sorted(glob.glob("/dev/gpiochip*")):
        if not gpiod.is_gpiochip_device(path):
            continue
        label = _chip_label(gpiod, path)
        if label == chip:
            return path, label
        labels.append(f"{path} '{label}'")
    raise GpioError(f"no GPIO chip labelled '{chip}'; chips: {', '.join(labels) or 'none'}")


def _chip_label(gpiod: ModuleType, path: str) -> str:
    with gpiod.Chip(path) as chip:
        return str(chip.get_info().label)


def _resolve_lines(
    gpiod: ModuleType, path: str, label: str, lines: Mapping[str, tuple[str | int, bool]]
) -> dict[str, int]:
    offsets: dict[str, int] = {}
    with gpiod.Chip(path) as chip:
        for name, (line_id, _) in lines.items():
            try:
                offsets[name] = int(chip.line_offset_from_id(line_id))
            except (OSError, ValueError) as error:
                available = _line_names(chip)
                raise GpioError(
                    f"GPIO chip '{label}' has no line {line_id!r} (output '{name}'); "
                    f"lines: {', '.join(available)}"
                ) from error
    return offsets


def _line_names(chip: Any) -> list[str]:
    count = int(chip.get_info().num_lines)
    return [chip.get_line_info(offset).name or str(offset) for offset in range(count)]
