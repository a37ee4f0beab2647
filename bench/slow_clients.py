"""Stream clients that do not keep up, on raw sockets: one that never reads and one that
trickles (a few bytes per interval), both with a small kernel receive buffer so the
backlog shows up on the gateway's side at once. Used by the fault report's slow-client
scenario and the gateway's slow-client integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

import orjson

RCVBUF = 4096  # the kernel doubles it; small enough that the gateway's buffer fills


def stream_request(url: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of a GET request for path on url (`http://host:port`)."""
    host = url.removeprefix("http://")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_silent(url: str, request: bytes) -> socket.socket:
    """Send request from a socket with a tiny receive buffer; nothing is read here."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, request)
    return sock


async def closed_by_server(sock: socket.socket, idle_s: float = 5.0) -> bool:
    """Drain what the kernel holds; True once the server has closed or reset, False
    when nothing more arrives for idle_s with the connection still open. (The gateway
    resets a connection it cuts as slow, so a cut one ends at once; a server that
    closed gracefully would trickle its whole send buffer through the tiny window.)"""
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), idle_s)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@dataclass
class SseReader:
    """Incremental parser of a chunked HTTP/1.1 SSE response read from a raw socket:
    quote and snapshot versions per symbol, in arrival order."""

    versions: dict[str, list[int]] = field(default_factory=dict)
    status: int = 0
    received: int = 0
    _raw: bytearray = field(default_factory=bytearray)
    _body: bytearray = field(default_factory=bytearray)
    _in_body: bool = False

    def feed(self, data: bytes) -> None:
        """Take the next bytes off the socket."""
        self.received += len(data)
        self._raw += data
        if not self._in_body:
            head, sep, rest = bytes(self._raw).partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head.split(b" ", 2)[1])
            self._in_body = True
            self._raw = bytearray(rest)
        self._dechunk()
        self._events()

    def _dechunk(self) -> None:
        while True:
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self._raw[:line_end]).split(b";")[0] or b"0", 16)
            end = line_end + 2 + size + 2
            if len(self._raw) < end:
                return
            self._body += self._raw[line_end + 2 : end - 2]
            del self._raw[:end]

    def _events(self) -> None:
        while (cut := self._body.find(b"\n\n")) >= 0:
            frame = bytes(self._body[:cut])
            del self._body[: cut + 2]
            event, data = b"", b""
            for line in frame.split(b"\n"):
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"data:"):
                    data = line[5:].strip()
            if event in (b"snapshot", b"quote") and data:
                state = orjson.loads(data)
                self.versions.setdefault(state["symbol"], []).append(state["version"])


@dataclass
class Trickler:
    """A client reading `bytes_per_read` bytes every `interval_s` until stopped or cut."""

    sock: socket.socket
    bytes_per_read: int = 256
    interval_s: float = 0.05
    reader: SseReader = field(default_factory=SseReader)
    closed_by_server: bool = False

    async def run(self, stop: asyncio.Event) -> None:
        """Trickle until stop is set or the server closes the connection."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                chunk = await asyncio.wait_for(
                    loop.sock_recv(self.sock, self.bytes_per_read), self.interval_s * 20
                )
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed_by_server = True
                return
            self.reader.feed(chunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
