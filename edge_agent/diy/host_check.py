"""Is this machine ready to talk to the box? I2C and GPIO enabled and accessible (for probe).

Each check returns findings that name the device file and, when it fails, the fix: enabling
I2C on a Raspberry Pi (`raspi-config`, `dtparam=i2c_arm=on`), loading `i2c-dev`, or the `i2c`
and `gpio` groups. The paths are parameters so tests can build a fake /dev.
"""

from __future__ import annotations

import grp
import importlib.util
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Status(Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "FAIL"


class Area(Enum):
    """What a failure is about; each has its own exit code (see `probe`)."""

    HOST = "host"  # I2C / GPIO not enabled or not accessible
    CHIPS = "chips"  # a configured chip missing, elsewhere, or another chip
    READINGS = "readings"  # the chips answer, but what they read shows a wiring problem
    OUTPUTS = "outputs"  # the output pulse was refused or failed


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    area: Area
    text: str
    code: str = ""  # a stable name for problems ("missing-chip"); "" for the rest
    fix: tuple[str, ...] = ()  # what to do, one line each


@dataclass(frozen=True, slots=True)
class HostPaths:
    dev: Path = Path("/dev")
    sys_module: Path = Path("/sys/module")
    model: Path = Path("/proc/device-tree/model")
    boot_configs: tuple[Path, ...] = field(
        default=(Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
    )


_ADD_TO_GROUP = "sudo usermod -aG {group} $USER   (then log out and in again; the service user "
_SERVICE_USER = "sbms is in it already if you followed docs/install.md step 4)"


def check_i2c(bus: int, paths: HostPaths | None = None) -> list[Finding]:
    """/dev/i2c-N exists and this user may open it read-write."""
    paths = paths or HostPaths()
    device = paths.dev / f"i2c-{bus}"
    if not device.exists():
        return [_missing_i2c(device, paths)]
    try:
        descriptor = os.open(device, os.O_RDWR)
    except PermissionError:
        return [
            Finding(
                Status.FAIL,
                Area.HOST,
                f"{device} exists but this user ({_user()}) may not open it ({_ownership(device)})",
                "i2c-permission",
                (_ADD_TO_GROUP.format(group=_group_of(device, "i2c")) + _SERVICE_USER,),
            )
        ]
    except OSError as err:
        return [Finding(Status.FAIL, Area.HOST, f"{device}: cannot open: {err}", "i2c-open")]
    os.close(descriptor)
    return [Finding(Status.OK, Area.HOST, f"{device} exists and opens read-write")]


def check_gpio(chips: Sequence[str], paths: HostPaths | None = None) -> list[Finding]:
    """The GPIO chips the outputs name are there and accessible, and libgpiod's Python
    binding is installed. `chips`: the configuration's chip labels or /dev paths."""
    paths = paths or HostPaths()
    if not chips:
        return [Finding(Status.INFO, Area.HOST, "GPIO: no output uses a GPIO line")]
    found = sorted(paths.dev.glob("gpiochip*"))
    if not found:
        return [
            Finding(
                Status.FAIL,
                Area.HOST,
                f"GPIO: no {paths.dev}/gpiochip* device; outputs need {', '.join(chips)}",
                "no-gpio",
                ("a kernel with the GPIO character device (any Raspberry Pi OS since 2020)",),
            )
        ]
    findings: list[Finding] = []
    named = [Path(chip) for chip in chips if chip.startswith("/")]
    for path in named:
        if not path.exists():
            listed = ", ".join(str(p) for p in found)
            findings.append(
                Finding(
                    Status.FAIL,
                    Area.HOST,
                    f"GPIO: {path} does not exist (this machine has {listed})",
                    "no-gpio",
                )
            )
    # A label is resolved by libgpiod at start; every chip must be accessible for that.
    to_check = [p for p in named if p.exists()] if len(named) == len(chips) else found
    denied = [path for path in to_check if not os.access(path, os.R_OK | os.W_OK)]
    if denied:
        findings.append(
            Finding(
                Status.FAIL,
                Area.HOST,
                f"GPIO: this user ({_user()}) may not open "
                f"{', '.join(str(p) for p in denied)} ({_ownership(denied[0])})",
                "gpio-permission",
                (_ADD_TO_GROUP.format(group=_group_of(denied[0], "gpio")) + _SERVICE_USER,),
            )
        )
    if importlib.util.find_spec("gpiod") is None:
        findings.append(
            Finding(
                Status.FAIL,
                Area.HOST,
                "GPIO: the Python package gpiod (libgpiod v2) is not installed",
                "gpiod-missing",
                ("/opt/sbms-agent/bin/pip install 'gpiod>=2.0.2'",),
            )
        )
    if not findings:
        findings.append(
            Finding(
                Status.OK,
                Area.HOST,
                f"GPIO: {', '.join(str(p) for p in to_check)} accessible "
                f"(outputs on {', '.join(chips)})",
            )
        )
    return findings


def _missing_i2c(device: Path, paths: HostPaths) -> Finding:
    others = sorted(paths.dev.glob("i2c-*"))
    if others:
        listed = ", ".join(str(p) for p in others)
        return Finding(
            Status.FAIL,
            Area.HOST,
            f"{device} does not exist; this machine has {listed}",
            "no-i2c",
            (f"set i2c_bus in the configuration to the bus the box is wired to ({listed})",),
        )
    fixes: list[str] = []
    if _is_raspberry_pi(paths):
        fixes.append("sudo raspi-config nonint do_i2c 0   (then reboot)")
        config = next((p for p in paths.boot_configs if p.exists()), paths.boot_configs[0])
        fixes.append(f"or add the line dtparam=i2c_arm=on to {config} and reboot")
    else:
        fixes.append("enable the I2C controller in the device tree the board vendor's way")
    if not (paths.sys_module / "i2c_dev").exists():
        fixes.append(
            "load the i2c-dev module: sudo modprobe i2c-dev; to keep it: "
            "echo i2c-dev | sudo tee /etc/modules-load.d/i2c-dev.conf"
        )
    return Finding(
        Status.FAIL,
        Area.HOST,
        f"{device} does not exist: I2C is not enabled (no {paths.dev}/i2c-* at all)",
        "no-i2c",
        tuple(fixes),
    )


def _is_raspberry_pi(paths: HostPaths) -> bool:
    try:
        return "Raspberry Pi" in paths.model.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False


def _user() -> str:
    try:
        import pwd  # noqa: PLC0415 - Unix only, like the rest of this module

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _group_of(path: Path, default: str) -> str:
    try:
        return grp.getgrgid(path.stat().st_gid).gr_name
    except (KeyError, OSError):
        return default


def _ownership(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "cannot stat it"
    return f"group {_group_of(path, str(info.st_gid))}, mode {stat.filemode(info.st_mode)}"
