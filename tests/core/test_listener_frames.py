"""RFC 6455 framing as the listener sees it, over a real socket: lengths, partial reads,
fragments, control frames and every protocol error a server can make.

The bytes go straight onto the TCP stream of a scripted server (``send_raw``), so the frames
are exactly those written here; websocket-client reads them, the listener turns them into
events or drops the connection.
"""

from __future__ import annotations

import json
import struct
from typing import Any, List

import pytest
import test_listener as base
from test_listener import WAIT, ScriptedServer, status

from comfysync import events as ev
from comfysync._ws import frames

# The fixtures of the listener tests, reused (assigned, not imported, for the linter).
scripted = base.scripted
make_listener = base.make_listener

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(
    opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"", rsv: int = 0
) -> bytes:
    """Encode one frame the way a server (or, with ``mask``, a client) would."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mask_bit | n])
    elif n < 1 << 16:
        head = bytes([b0, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mask_bit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def text(obj: Any) -> bytes:
    return ws_frame(OP_TEXT, json.dumps(obj).encode())


def queue_is(n: int) -> Any:
    return lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == n for e in evs)


def unknown_binary(size: int) -> bytes:
    """A binary message of ``size`` bytes (>= 4) that decodes to ``UnknownEvent``."""
    return struct.pack(">I", 9) + bytes(i % 251 for i in range(size - 4))


# --------------------------------------------------------------------------- lengths, reads


@pytest.mark.parametrize("size", [4, 5, 125, 126, 127, 65535, 65536, 300_000])
def test_every_length_encoding_arrives_whole(
    scripted: ScriptedServer, make_listener: Any, size: int
) -> None:
    """7-bit, 16-bit and 64-bit lengths, at and around each boundary."""
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    payload = unknown_binary(size)
    scripted.send_raw(ws_frame(OP_BINARY, payload) + text(status(1)))
    rec.wait(queue_is(1))
    (unknown,) = rec.of(ev.UnknownEvent)
    assert unknown.type == "binary:9" and unknown.data == payload[4:]


def test_a_stream_trickling_byte_by_byte_yields_every_message(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """Headers, extended lengths and payloads split across reads at every byte."""
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    stream = (
        text(status(1))
        + ws_frame(OP_BINARY, unknown_binary(200))
        + ws_frame(OP_PING, b"hi")
        + text({"type": "x.big", "data": {"pad": "x" * 70_000}})
        + text(status(2))
    )
    rec.wait_count(ev.FeatureFlags)  # the server's own frames must not interleave below
    for i in range(0, 300):
        scripted.send_raw(stream[i : i + 1])
    scripted.send_raw(stream[300:])
    rec.wait(queue_is(2))
    assert [e.queue_remaining for e in rec.of(ev.Status)][1:] == [1, 2]
    assert [e.type for e in rec.of(ev.UnknownEvent)] == ["binary:9", "x.big"]
    assert rec.of(ev.UnknownEvent)[1].data == {"pad": "x" * 70_000}
    assert listener.connected


def test_a_large_frame_in_tls_record_sized_writes_comes_whole_and_once(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """A 7 MB SaveImageWebsocket frame written 16 kB at a time comes out whole and once,
    with the small frames around it in order."""
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (7 * 4096)
    big = struct.pack(">II", 1, 2) + image
    stream = text(status(1)) + ws_frame(OP_BINARY, big) + text(status(2))
    rec.wait_count(ev.FeatureFlags)  # the server's own frames must not interleave below
    for i in range(0, len(stream), 16384):
        scripted.send_raw(stream[i : i + 16384])
    rec.wait(queue_is(2))
    (preview,) = rec.of(ev.Preview)
    assert preview.image == image
    kinds = [type(e) for e in rec.events if isinstance(e, (ev.Status, ev.Preview))]
    assert kinds[-3:] == [ev.Status, ev.Preview, ev.Status]


def test_fragments_are_reassembled_around_control_frames(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    scripted.autoping = False
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    payload = unknown_binary(3000)
    scripted.send_raw(
        ws_frame(OP_BINARY, payload[:1000], fin=False)
        + ws_frame(OP_PING, b"p")
        + ws_frame(OP_CONT, payload[1000:2000], fin=False)
        + ws_frame(OP_PONG, b"")
        + ws_frame(OP_CONT, payload[2000:])
        + text(status(1))
    )
    rec.wait(queue_is(1))
    (unknown,) = rec.of(ev.UnknownEvent)
    assert unknown.data == payload[4:]
    scripted.wait_for(lambda: len(scripted.control) >= 1)
    assert scripted.control == [("PONG", b"p")]


def test_pong_then_close_frame(scripted: ScriptedServer, make_listener: Any) -> None:
    """A pong is no event; a close frame with its code ends the connection, answered with
    the same code."""
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.send_raw(ws_frame(OP_PONG, b"") + ws_frame(OP_CLOSE, struct.pack(">H", 1001)))
    rec.wait_count(ev.ReconnectionFailed)
    (disconnected,) = rec.of(ev.Disconnected)
    assert disconnected.code == 1001
    assert disconnected.reason == "server closed the connection (1001)"
    scripted.wait_for(lambda: len(scripted.close_codes) >= 1)
    assert scripted.close_codes == [1001]
    assert [e.type for e in rec.events if e.type not in ("status", "feature_flags")] == [
        "connected", "disconnected", "reconnection_failed"
    ]


# --------------------------------------------------------------------------- protocol errors


def _dropped_with(rec: Any, scripted: ScriptedServer, reason: str) -> None:
    """The connection ended as a protocol error naming ``reason``, answered with 1002."""
    rec.wait_count(ev.ReconnectionFailed)
    (disconnected,) = rec.of(ev.Disconnected)
    assert "protocol error" in disconnected.reason
    assert reason in disconnected.reason
    scripted.wait_for(lambda: len(scripted.close_codes) >= 1)
    assert scripted.close_codes == [1002]


@pytest.mark.parametrize(
    "header, reason",
    [
        (bytes([0x82 | 0x40, 127]) + struct.pack(">Q", 1 << 20), "reserved bits"),
        (bytes([0x83, 127]) + struct.pack(">Q", 1 << 20), "unknown opcode"),
        (bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 1 << 20), "masked"),
        (bytes([0x89, 127]) + struct.pack(">Q", 1 << 20), "control frame"),
        (bytes([0x09, 5]), "control frame"),
        (bytes([0x82, 127]) + struct.pack(">Q", 1 << 63), "exceeds"),
    ],
)
def test_a_bad_header_drops_the_connection_before_its_payload(
    scripted: ScriptedServer, make_listener: Any, header: bytes, reason: str
) -> None:
    """Only the header is sent: the listener must not wait for (or buffer) a payload that
    only a broken server would announce."""
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.send_raw(header)
    _dropped_with(rec, scripted, reason)


@pytest.mark.parametrize(
    "stream, reason",
    [
        (ws_frame(OP_TEXT, b"x", rsv=0x40), "reserved bits"),
        (ws_frame(0x3, b"x"), "unknown opcode"),
        (ws_frame(OP_CONT, b"x"), "Illegal frame"),  # continuation without a message
        (ws_frame(OP_TEXT, b"a", fin=False) + ws_frame(OP_TEXT, b"b"), "Illegal frame"),
        (ws_frame(OP_PING, b"x", fin=False), "control frame"),
        (ws_frame(OP_PING, b"x" * 126), "control frame"),
        (ws_frame(OP_BINARY, b"x" * 2000), "exceeds 1000"),
        (ws_frame(OP_TEXT, b"x" * 600, fin=False) + ws_frame(OP_CONT, b"y" * 600), "exceeds 1000"),
    ],
)
def test_protocol_errors_drop_the_connection(
    scripted: ScriptedServer,
    make_listener: Any,
    monkeypatch: pytest.MonkeyPatch,
    stream: bytes,
    reason: str,
) -> None:
    monkeypatch.setattr(frames, "MAX_MESSAGE", 1000)
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.send_raw(stream + text(status(9)))
    _dropped_with(rec, scripted, reason)
    assert not any(isinstance(e, ev.Status) and e.queue_remaining == 9 for e in rec.events)


def test_an_oversized_frame_is_refused_from_its_header(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.send_raw(bytes([0x82, 127]) + struct.pack(">Q", 1 << 40))
    _dropped_with(rec, scripted, f"exceeds {frames.MAX_MESSAGE}")


def test_a_masked_frame_before_the_greeting_fails_the_attempt(make_listener: Any) -> None:
    """RFC 6455 §5.1 from the first frame on: the attempt fails, with the reason."""
    server = ScriptedServer()
    try:
        server.raw_before_greeting = ws_frame(OP_TEXT, b"{}", mask=b"\x01\x02\x03\x04")
        listener, bus, rec = make_listener(server.url)
        with pytest.raises(base.ComfyConnectionError, match="masked"):
            listener.start(timeout=WAIT)
        events: List[ev.Event] = rec.events
        assert events == []
    finally:
        server.close()
