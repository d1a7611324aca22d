"""An `SMBusLike` bus that sends every transaction to a `bus_server` over a Unix socket.

Used by `sbms-agent --simulated-bus SOCKET`: the agent runs its normal hardware path against a
simulated box living in another process. A device's OSError (ENXIO, EREMOTEIO, ...) comes back
as the same OSError; a lost server is an OSError too, as a vanished I2C adapter would be, and
the next transaction connects again.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from pathlib import Path

from edge_agent.simulator.bus_protocol import (
    Op,
    ProtocolError,
    Request,
    decode_response,
    decode_word,
    encode_request,
    encode_word,
    frame,
    split_frame,
)

_TIMEOUT_S = 5.0  # a server that stops answering is a hung bus: an error, not a hang


class SocketSMBus:
    """The slice of `smbus2.SMBus` the drivers use, served by a simulated box elsewhere."""

    def __init__(self, socket_path: Path | str, timeout_s: float = _TIMEOUT_S) -> None:
        self.socket_path = Path(socket_path)
        self._timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._call(Op.READ_BYTE, i2c_addr, register)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._call(Op.WRITE_BYTE, i2c_addr, register, bytes([_byte(value)]))

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return decode_word(self._call(Op.READ_WORD, i2c_addr, register))

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"word value {value} out of range")
        self._call(Op.WRITE_WORD, i2c_addr, register, encode_word(value))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        return list(self._call(Op.READ_BLOCK, i2c_addr, register, bytes([_byte(length)])))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._call(Op.WRITE_BLOCK, i2c_addr, register, bytes(_byte(value) for value in data))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _call(self, op: Op, address: int, register: int, argument: bytes = b"") -> bytes:
        """The result; a device's error is raised as the server reported it."""
        request = Request(op, _byte(address), _byte(register), argument)
        try:
            payload = self._exchange(frame(encode_request(request)))
        except OSError:
            self.close()  # start clean with the next transaction
            raise
        try:
            return decode_response(payload)
        except ProtocolError as error:
            self.close()
            raise OSError(errno.EPROTO, f"simulated bus {self.socket_path}: {error}") from error

    def _exchange(self, request: bytes) -> bytes:
        sock = self._connected()
        sock.sendall(request)
        while (found := split_frame(self._buffer)) is None:
            data = sock.recv(4096)
            if not data:
                raise ConnectionResetError(f"simulated bus {self.socket_path} closed")
            self._buffer += data
        payload, used = found
        del self._buffer[:used]
        return payload

    def _connected(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout_s)
            try:
                sock.connect(str(self.socket_path))
            except OSError:
                sock.close()
                raise
            self._sock = sock
            self._buffer.clear()
        return self._sock


def _byte(value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"byte value {value} out of range")
    return value
