"""Whole messages read off an open websocket-client socket, with RFC 6455's rules enforced.

websocket-client reads the socket and splits it into frames; :class:`MessageReader` turns
those frames into the messages the listener handles — text and binary messages (fragments
reassembled by websocket-client's own continuation buffer) and close frames — answers pings
with their payload, and ignores pongs (unsolicited ones are legal and mean nothing).

What this module adds to websocket-client is strictness, checked from each frame's header so
that a broken stream fails before its payload is waited for (or buffered): reserved bits (no
extension is ever negotiated), unknown opcodes, a masked frame (RFC 6455 §5.1: servers never
mask), a fragmented or oversized control frame, and a message larger than ``max_message``
(which also covers 64-bit lengths with the top bit set). Continuation without a message and a
new message inside a fragmented one are websocket-client's own checks. Any of them raises a
``websocket.WebSocketProtocolException``; the connection cannot be resynchronised and must go.

UTF-8 validity of text messages is left to :func:`~comfysync._ws.wire.decode_text`
(websocket-client's validator is pure Python and slow): a bad text message still has intact
boundaries, so it is skipped like any undecodable message instead of costing the connection.

Reads go through websocket-client's socket layer (timeouts, TLS) in large pieces: one system
call for many small frames instead of two or three per frame.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, cast

import websocket

__all__ = [
    "MessageReader",
    "ProtocolError",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "MAX_MESSAGE",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

#: The largest message accepted (a full-size image sent by SaveImageWebsocket is a few MB).
MAX_MESSAGE = 1 << 30
#: Bytes asked of the socket per read; small frames are then served from memory.
READ_SIZE = 256 * 1024


class ProtocolError(websocket.WebSocketProtocolException):
    """The server broke RFC 6455's framing rules: the connection must be dropped."""


class _BufferedRecv:
    """The ``recv(n)`` websocket-client's frame buffer calls, served from reads of
    ``READ_SIZE`` bytes through websocket-client's own socket layer."""

    __slots__ = ("_ws", "_buf", "_pos")

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._buf = b""
        self._pos = 0

    def __call__(self, size: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            sock = self._ws.sock
            if sock is None:
                raise websocket.WebSocketConnectionClosedException("socket already closed")
            read: Callable[..., bytes] = websocket.recv  # untyped in websocket-client
            buf = self._buf = read(sock, max(size, READ_SIZE))
            pos = 0
        end = pos + size
        self._pos = end
        if pos == 0 and end >= len(buf):
            return buf
        return buf[pos:end]


class _CheckedFrameBuffer(websocket.frame_buffer):
    """websocket-client's frame buffer with RFC 6455's header checks made as soon as the
    header is read."""

    def __init__(self, recv: Callable[[int], bytes], max_message: int) -> None:
        super().__init__(recv, True)  # UTF-8 is checked by the decoder
        self.max_message = max_message

    def recv_header(self) -> None:
        super().recv_header()
        header = self.header
        if header is None:  # websocket-client always sets it; kept for the type checker
            raise ProtocolError("no frame header")
        fin, rsv1, rsv2, rsv3, opcode, has_mask, length_bits = header
        if rsv1 or rsv2 or rsv3:
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        if has_mask:
            raise ProtocolError("masked frame from the server (RFC 6455 §5.1)")
        if opcode in _CONTROL_OPCODES:
            if not fin or length_bits > 125:
                raise ProtocolError("fragmented or oversized control frame")
        elif opcode not in _DATA_OPCODES:
            raise ProtocolError(f"unknown opcode {opcode:#x}")

    def recv_length(self) -> None:
        super().recv_length()
        # also refuses a 64-bit length with its top bit set
        if self.length is not None and self.length > self.max_message:
            raise ProtocolError(f"frame of {self.length} bytes exceeds {self.max_message}")


class MessageReader:
    """Reads whole messages from ``ws`` (a connected ``websocket.WebSocket``); see the module
    docstring. Only one thread reads; ``ws`` sends (pongs) under its own lock."""

    __slots__ = ("_ws", "_frames", "_continuation", "_size", "max_message")

    def __init__(self, ws: websocket.WebSocket, max_message: Optional[int] = None) -> None:
        self._ws = ws
        self.max_message = MAX_MESSAGE if max_message is None else max_message
        self._frames = _CheckedFrameBuffer(_BufferedRecv(ws), self.max_message)
        ws.frame_buffer = self._frames
        self._continuation = ws.cont_frame
        self._size = 0  # bytes of the fragmented message being reassembled

    def receive(self) -> Tuple[int, bytes]:
        """The next text/binary message or close frame as ``(opcode, payload)``. Raises
        ``websocket.WebSocketProtocolException`` on a broken stream, websocket-client's
        timeout and connection-closed exceptions, or ``OSError``."""
        ws = self._ws
        continuation = self._continuation
        recv_frame = self._frames.recv_frame
        while True:
            frame = recv_frame()
            opcode: int = frame.opcode
            if opcode == OP_TEXT or opcode == OP_BINARY or opcode == OP_CONTINUATION:
                if frame.fin and opcode != OP_CONTINUATION and not continuation.recving_frames:
                    return opcode, cast(bytes, frame.data)  # the common case: one whole frame
                continuation.validate(frame)
                self._size += len(frame.data)
                if self._size > self.max_message:
                    raise ProtocolError(f"message exceeds {self.max_message} bytes")
                continuation.add(frame)
                if frame.fin:
                    self._size = 0
                    opcode, frame = continuation.extract(frame)
                    return opcode, cast(bytes, frame.data)
            elif opcode == OP_CLOSE:
                return opcode, cast(bytes, frame.data)
            elif opcode == OP_PING:
                ws.pong(frame.data)
            # OP_PONG: nothing to do
