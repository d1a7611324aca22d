"""Register-level recording and replay of an `SMBusLike` bus (`--record`, `sbms-agent replay`).

`RecordingBus` wraps the real bus and logs every transaction the drivers make; the agent takes
the log at the end of each step (`take`) and writes it into that step's recording line.
`ReplayBus` stands in for the bus when a recording is replayed: it serves the recorded reads
(and errors) in order to the real drivers and checks that every write is the recorded one.

One transaction is a JSON array `[address, op, register, data]`, plus `[errno, strerror]` as
a fifth element when the bus raised `OSError`:

| op | call | data |
|---|---|---|
| `rb` / `rw` | `read_byte_data` / `read_word_data` | the result (null on an error) |
| `wb` / `ww` | `write_byte_data` / `write_word_data` | the value written |
| `rk` | `read_i2c_block_data` | the bytes read (on an error: the length asked for) |
| `wk` | `write_i2c_block_data` | the bytes written |

A transaction's time is its line's `t`: the agent's time for the step (the agent reads its
clock once a step; transactions between steps, such as the cell monitor's configuration after
a settings change, are logged with the next step). An 8S box makes about 30 transactions a
sample, about 590 bytes of JSON (`bench/i2c_traffic.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from edge_agent.drivers.bus import SMBusLike

Transaction = list[Any]  # [address, op, register, data] or [..., [errno, strerror]]

READS = {"rb": "read_byte_data", "rw": "read_word_data", "rk": "read_i2c_block_data"}
WRITES = {"wb": "write_byte_data", "ww": "write_word_data", "wk": "write_i2c_block_data"}
OPS = {**READS, **WRITES}


class RecordingBus:
    """An `SMBusLike` that passes every call to `bus` and logs it (errors included). `name`
    is the bus's name in the drivers' messages, recorded so the replay's messages match."""

    def __init__(self, bus: SMBusLike, name: str) -> None:
        self._bus = bus
        self.name = name
        self._log: list[Transaction] = []

    def take(self) -> list[Transaction]:
        """The transactions since the last `take`, oldest first."""
        log, self._log = self._log, []
        return log

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return int(self._read("rb", i2c_addr, register, self._bus.read_byte_data))

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return int(self._read("rw", i2c_addr, register, self._bus.read_word_data))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        try:
            result = [int(b) for b in self._bus.read_i2c_block_data(i2c_addr, register, length)]
        except OSError as err:
            self._log.append([i2c_addr, "rk", register, length, _error(err)])
            raise
        self._log.append([i2c_addr, "rk", register, result])
        return result

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._write([i2c_addr, "wb", register, value], self._bus.write_byte_data, value)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._write([i2c_addr, "ww", register, value], self._bus.write_word_data, value)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        entry = [i2c_addr, "wk", register, [int(b) for b in data]]
        self._write(entry, self._bus.write_i2c_block_data, data)

    def close(self) -> None:
        self._bus.close()

    def _read(self, op: str, address: int, register: int, call: Any) -> int:
        try:
            result = int(call(address, register))
        except OSError as err:
            self._log.append([address, op, register, None, _error(err)])
            raise
        self._log.append([address, op, register, result])
        return result

    def _write(self, entry: Transaction, call: Any, data: object) -> None:
        try:
            call(entry[0], entry[2], data)
        except OSError as err:
            self._log.append([*entry, _error(err)])
            raise
        self._log.append(entry)


def _error(err: OSError) -> list[Any]:
    number = err.errno if err.errno is not None else 0
    message = err.strerror or (os.strerror(number) if number else str(err))
    return [number, message]


class ReplayMismatchError(Exception):
    """The drivers did something else than the recording holds at this transaction."""


class ReplayBus:
    """Serves recorded transactions, in order, to the real drivers.

    `transactions[i]` came from recording line `lines[i]`. A call that is not the next
    recorded transaction (another op, address, register, length or written value), or one past
    the end, raises `ReplayMismatchError` naming the transaction's index and line, the address
    and the register; the first such error is also kept in `error`, so a driver or loop that
    catches broadly cannot hide it.
    """

    def __init__(self, transactions: Sequence[Transaction], lines: Sequence[int]) -> None:
        self._transactions = transactions
        self._lines = lines
        self.position = 0
        self.error: ReplayMismatchError | None = None

    def where(self, index: int) -> str:
        if index < len(self._lines):
            return f"transaction {index} (recording line {self._lines[index]})"
        return f"transaction {index} (past the recording's end)"

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return int(self._serve("rb", i2c_addr, register, None))

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return int(self._serve("rw", i2c_addr, register, None))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return list(self._serve("rk", i2c_addr, register, length))

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._serve("wb", i2c_addr, register, value)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._serve("ww", i2c_addr, register, value)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._serve("wk", i2c_addr, register, [int(b) for b in data])

    def close(self) -> None:
        pass

    def _serve(self, op: str, address: int, register: int, data: Any) -> Any:
        index = self.position
        done = describe([address, op, register, data])
        if index >= len(self._transactions):
            self._fail(f"{self.where(index)}: the drivers did {done}; the recording has ended")
        recorded = self._transactions[index]
        r_address, r_op, r_register, r_data = recorded[:4]
        same = (r_address, r_op, r_register) == (address, op, register)
        if same and op in WRITES:
            same = r_data == data
        elif same and op == "rk":
            asked = len(r_data) if isinstance(r_data, list) else r_data
            same = asked == data
        if not same:
            self._fail(
                f"{self.where(index)}: the drivers did {done}, the recording has "
                f"{describe(recorded)}"
            )
        self.position += 1
        if len(recorded) > 4:
            number, message = recorded[4]
            raise OSError(number, message)
        return r_data

    def _fail(self, message: str) -> None:
        error = ReplayMismatchError(message)
        if self.error is None:
            self.error = error
        raise error


def describe(transaction: Sequence[Any]) -> str:
    """`write_byte_data 0x2A to register 0x4B at address 0x28`, for error messages."""
    address, op, register, data = transaction[:4]
    call = OPS.get(op, repr(op))
    where = f"register 0x{register:02X} at address 0x{address:02X}"
    if op in WRITES:
        return f"{call} {_value(data)} to {where}"
    if op == "rk":
        length = len(data) if isinstance(data, list) else data
        return f"{call} of {length} bytes from {where}"
    return f"{call} from {where}"


def _value(data: object) -> str:
    if isinstance(data, list):
        return "[" + " ".join(f"{b:02X}" for b in data) + "]"
    return f"0x{data:02X}" if isinstance(data, int) else repr(data)
