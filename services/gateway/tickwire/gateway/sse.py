"""Server-Sent Events framing (WHATWG HTML, "Server-sent events"), as bytes.

An event is `event:` / `id:` / `data:` lines and a blank line. Data lines cannot hold
a line break, so a value with one is split over several `data:` lines (the browser
joins them with "\\n"). Record values on ticker.* are single-line JSON, so the common
path is one concatenation.
"""

from __future__ import annotations

_LINE_BREAKS = (b"\r\n", b"\r")
#: The chunk that ends a chunked HTTP/1.1 body (a stream the server ends on purpose).
LAST_CHUNK = b"0\r\n\r\n"


def frame(event: bytes, event_id: bytes, data: bytes) -> bytes:
    """One complete SSE event."""
    if b"\n" in data or b"\r" in data:
        for brk in _LINE_BREAKS:
            data = data.replace(brk, b"\n")
        body = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
        return b"event: " + event + b"\nid: " + event_id + b"\n" + body + b"\n"
    return b"event: " + event + b"\nid: " + event_id + b"\ndata: " + data + b"\n\n"


def comment(text: bytes = b"") -> bytes:
    """A comment line (ignored by clients; keeps proxies and idle timers awake)."""
    return b": " + text + b"\n\n"


def retry(milliseconds: int) -> bytes:
    """The reconnection-time hint."""
    return b"retry: %d\n\n" % milliseconds


def chunk(payload: bytes) -> list[bytes]:
    """HTTP/1.1 chunked transfer-coding pieces for a payload (for writelines)."""
    return [b"%x\r\n" % len(payload), payload, b"\r\n"]
