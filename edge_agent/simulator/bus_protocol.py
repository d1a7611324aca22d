"""The wire format between `bus_server` (a simulated box's bus) and `bus_client` (the agent's).

One request, one response, each a frame: a 2-byte big-endian payload length, then the payload.

    request:  op, i2c address, register, then the op's argument:
              READ_BYTE, READ_WORD: nothing; READ_BLOCK: length (1 byte);
              WRITE_BYTE: value (1 byte); WRITE_WORD: value (2 bytes, big-endian);
              WRITE_BLOCK: the data bytes
    response: OK, then the result (a byte, a big-endian word, or the block; nothing for writes)
              OS_ERROR, errno (2 bytes), the message (UTF-8): raised as OSError(errno) again
              VALUE_ERROR, the message (UTF-8): raised as ValueError again

Values travel as numbers, not as a chip's register bytes: the fake bus behind the server does
the SMBus framing (word byte order) exactly as it does in-process.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

MAX_PAYLOAD = 0xFFFF
_LENGTH = struct.Struct(">H")
_HEADER = struct.Struct(">BBB")
_WORD = struct.Struct(">H")


class Op(IntEnum):
    READ_BYTE = 1
    WRITE_BYTE = 2
    READ_WORD = 3
    WRITE_WORD = 4
    READ_BLOCK = 5
    WRITE_BLOCK = 6


class Status(IntEnum):
    OK = 0
    OS_ERROR = 1
    VALUE_ERROR = 2


class ProtocolError(Exception):
    """A frame that does not follow this format."""


@dataclass(frozen=True, slots=True)
class Request:
    op: Op
    address: int
    register: int
    argument: bytes = b""


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes is too long")
    return _LENGTH.pack(len(payload)) + payload


def split_frame(buffer: bytes | bytearray) -> tuple[bytes, int] | None:
    """The first complete frame's payload and the bytes it took; None while incomplete."""
    if len(buffer) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack_from(buffer)
    end = _LENGTH.size + length
    if len(buffer) < end:
        return None
    return bytes(buffer[_LENGTH.size : end]), end


def encode_request(request: Request) -> bytes:
    return _HEADER.pack(request.op, request.address, request.register) + request.argument


def decode_request(payload: bytes) -> Request:
    if len(payload) < _HEADER.size:
        raise ProtocolError(f"request of {len(payload)} bytes has no header")
    op, address, register = _HEADER.unpack_from(payload)
    try:
        return Request(Op(op), address, register, payload[_HEADER.size :])
    except ValueError:
        raise ProtocolError(f"unknown op {op}") from None


def encode_word(value: int) -> bytes:
    return _WORD.pack(value)


def decode_word(data: bytes) -> int:
    if len(data) != _WORD.size:
        raise ProtocolError(f"a word is 2 bytes, got {len(data)}")
    (value,) = _WORD.unpack(data)
    return int(value)


def ok_response(result: bytes = b"") -> bytes:
    return bytes([Status.OK]) + result


def error_response(error: OSError | ValueError) -> bytes:
    message = str(error).encode("utf-8", "replace")
    if isinstance(error, OSError):
        code = error.errno if error.errno is not None and 0 <= error.errno <= 0xFFFF else 0
        return bytes([Status.OS_ERROR]) + _WORD.pack(code) + message
    return bytes([Status.VALUE_ERROR]) + message


def decode_response(payload: bytes) -> bytes:
    """The result of an OK response; raises the error a failed one carries."""
    if not payload:
        raise ProtocolError("empty response")
    status, body = payload[0], payload[1:]
    if status == Status.OK:
        return body
    if status == Status.OS_ERROR:
        code = decode_word(body[: _WORD.size]) or errno.EIO
        raise OSError(code, os.strerror(code))
    if status == Status.VALUE_ERROR:
        raise ValueError(body.decode("utf-8", "replace"))
    raise ProtocolError(f"unknown response status {status}")
