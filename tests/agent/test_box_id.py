"""The box's id (the announce's `serial`): made once, kept, one per agent (issue 18)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from edge_agent.cli import _run_parser, _sbms0_config, _sbms0_serial
from edge_agent.storage.box_id import BoxIdError, box_id_path_for, load_or_create_box_id


def test_an_id_is_made_once_and_kept(tmp_path: Path) -> None:
    path = box_id_path_for(tmp_path / "state" / "state.db")
    first = load_or_create_box_id(path)
    assert path.read_text(encoding="ascii") == first + "\n"
    assert load_or_create_box_id(path) == first
    assert len(first) == 16
    assert int(first, 16) >= 0


def test_two_agents_on_one_machine_have_two_ids(tmp_path: Path) -> None:
    one = load_or_create_box_id(box_id_path_for(tmp_path / "a.db"))
    other = load_or_create_box_id(box_id_path_for(tmp_path / "b.db"))
    assert one != other


@pytest.mark.parametrize("content", ["", "not an id\n", "0123456789abcdeF\n", "ab" * 9])
def test_a_damaged_id_file_is_named_and_never_replaced_silently(
    tmp_path: Path, content: str
) -> None:
    """A new id would make Home Assistant see a new box: the user decides, by deleting it."""
    path = tmp_path / "state.db.box-id"
    path.write_text(content, encoding="ascii")
    with pytest.raises(BoxIdError, match=r"state\.db\.box-id: not a box id"):
        load_or_create_box_id(path)
    assert path.read_text(encoding="ascii") == content


def test_an_unusable_place_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BoxIdError, match=r"file/state\.db\.box-id: cannot read the box id"):
        load_or_create_box_id(blocker / "state.db.box-id")


def _sbms0(*argv: str) -> str:
    args: argparse.Namespace = _run_parser().parse_args(list(argv))
    return _sbms0_serial(_sbms0_config(args))


def test_two_stock_sbms_on_one_machine_have_two_serials() -> None:
    one = _sbms0("--sbms0-serial", "/dev/serial/by-id/usb-FTDI_FT232R_A10K1234-if00-port0")
    other = _sbms0("--sbms0-serial", "/dev/serial/by-id/usb-FTDI_FT232R_A10K5678-if00-port0")
    board = _sbms0("--sbms0-url", "http://192.168.1.50/rawData")
    assert one == "sbms0-usb-FTDI-FT232R-A10K1234-if00-port0"
    assert len({one, other, board}) == 3
    assert board == "sbms0-192-168-1-50-rawData"
