"""A socket transport and a uvicorn request cycle, as far as the gateway's connections
use them, for unit tests of writing and cutting."""

from __future__ import annotations

import socket


class FakeTransport:
    """Records what is written; `buffered` plays the kernel buffer."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.buffered = 0
        self.sock = sock  # a real socket where a test checks its options

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.sock if name == "socket" else default

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, pieces: list[bytes]) -> None:
        self.written.append(b"".join(pieces))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


class Cycle:
    """uvicorn's request cycle: keep_alive cleared when the server shuts down."""

    keep_alive = True
