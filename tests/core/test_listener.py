"""Listener: connect, feature flags, decoding on the thread, attribution, reconnect, stop.

Two servers: a scripted one in this file (``ScriptedServer``, aiohttp on 127.0.0.1) for what
FakeComfyUI cannot show — the handshake headers, exact frames, a close before the greeting —
and FakeComfyUI itself (``fake_server`` fixture) for the real protocol and fault injection.
Every wait is bounded and event-driven (a recorder with a condition variable).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from comfysync import events as ev  # noqa: E402
from comfysync._dispatch import EventBus  # noqa: E402
from comfysync._http.transport import HttpTransport  # noqa: E402
from comfysync._tracking.attribution import Attribution  # noqa: E402
from comfysync._ws.listener import ConnectTimeoutError, Listener  # noqa: E402
from comfysync.errors import ComfyConnectionError, ComfyTimeoutError  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
WAIT = 10.0  # upper bound of every wait; tests normally finish in milliseconds


def _listener_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("comfysync-listener-")]


class Recorder:
    """Subscribes to "*" and lets a test wait for a condition on what arrived."""

    def __init__(self, bus: EventBus) -> None:
        self.events: List[ev.Event] = []
        self._cond = threading.Condition()
        bus.on("*", self._add)

    def _add(self, event: ev.Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, cls: type) -> List[Any]:
        with self._cond:
            return [e for e in self.events if isinstance(e, cls)]

    def wait(self, pred: Callable[[List[ev.Event]], bool], timeout: float = WAIT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self.events), timeout):
                names = [e.type for e in self.events]
                raise AssertionError(f"condition not met within {timeout} s; got {names}")

    def wait_count(self, cls: type, n: int = 1, timeout: float = WAIT) -> List[Any]:
        self.wait(lambda evs: sum(isinstance(e, cls) for e in evs) >= n, timeout)
        return self.of(cls)


# --------------------------------------------------------------------------- scripted server


class ScriptedServer:
    """A tiny ComfyUI-like WebSocket endpoint whose every move the test controls.

    On each handshake it records the request headers and time; ``refuse`` (an HTTP status)
    refuses handshakes, ``close_before_greeting`` accepts and closes at once. Otherwise it
    greets with ``status`` (sid = clientId), answers a first ``feature_flags`` text frame, and
    records what the client sent. ``send_text``/``send_bytes``/``drop`` act on the open sockets.
    """

    def __init__(self, prefix: str = "", ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.prefix = prefix
        self.ssl_context = ssl_context
        #: False: PING/PONG reach the handler (recorded in ``control``), none is answered.
        self.autoping = True
        #: Written onto the stream between the handshake and the greeting.
        self.raw_before_greeting = b""
        self.control: List[Tuple[str, bytes]] = []
        #: The close code each client socket ended with (1006: no close frame came).
        self.close_codes: List[Optional[int]] = []
        self.refuse: Optional[int] = None
        #: (status, Location) answered to a handshake on ``<prefix>/ws``; the socket itself is
        #: also served on ``<prefix>/moved/ws``.
        self.redirect: Optional[Tuple[int, str]] = None
        self.close_before_greeting = False
        self.close_after_greeting = False
        self._transports: Dict[Any, Any] = {}
        self.handshakes: List[Tuple[float, Dict[str, str], Dict[str, str]]] = []
        self.received: List[Any] = []
        self._sockets: List[web.WebSocketResponse] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-ws-server", daemon=True)
        self._thread.start()
        assert self._started.wait(WAIT)

    # -- server side (event loop thread)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get(self.prefix + "/ws", self._ws)
        app.router.add_get(self.prefix + "/moved/ws", self._ws)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._started.set()
        self._loop.run_forever()

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        with self._cond:
            self.handshakes.append((time.monotonic(), dict(request.headers), dict(request.query)))
            self._cond.notify_all()
        if self.refuse is not None:
            return web.Response(status=self.refuse, text="forbidden")
        if self.redirect is not None and request.path == self.prefix + "/ws":
            code, location = self.redirect
            return web.Response(status=code, headers={"Location": location})
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        if self.raw_before_greeting:
            request.transport.write(self.raw_before_greeting)
        if self.close_before_greeting:
            await ws.close()
            return ws
        sid = request.query.get("clientId", "generated")
        with self._cond:
            self._sockets.append(ws)
            self._transports[ws] = request.transport
        await ws.send_json(
            {
                "type": "status",
                "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": sid},
            }
        )
        if self.close_after_greeting:
            await ws.close()
            with self._cond:
                self._sockets.remove(ws)
            return ws
        first = True
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                with self._cond:
                    self.received.append(data)
                    self._cond.notify_all()
                if first and data.get("type") == "feature_flags":
                    await ws.send_json(
                        {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
                    )
                first = False
            elif msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                with self._cond:
                    self.control.append((msg.type.name, bytes(msg.data)))
                    self._cond.notify_all()
        with self._cond:
            self.close_codes.append(ws.close_code)
            self._cond.notify_all()
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    # -- test side

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)

    def _open(self) -> List[web.WebSocketResponse]:
        with self._cond:
            return list(self._sockets)

    def send_text(self, text: str) -> None:
        async def go() -> None:
            for ws in self._open():
                await ws.send_str(text)

        self._call(go())

    def send_json(self, obj: Any) -> None:
        self.send_text(json.dumps(obj))

    def send_bytes(self, data: bytes) -> None:
        async def go() -> None:
            for ws in self._open():
                await ws.send_bytes(data)

        self._call(go())

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the TCP stream, bypassing aiohttp's framing."""

        async def go() -> None:
            for ws in self._open():
                self._transports[ws].write(data)

        self._call(go())

    def abort(self) -> None:
        """Cut every TCP connection without a close frame."""

        async def go() -> None:
            for ws in self._open():
                self._transports[ws].abort()

        self._call(go())

    def drop(self) -> None:
        """Close every socket with a close frame (as a server restart would)."""

        async def go() -> None:
            for ws in self._open():
                await ws.close(code=1001)

        self._call(go())

    def wait_handshakes(self, n: int, timeout: float = WAIT) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.handshakes) >= n, timeout), (
                f"{len(self.handshakes)} handshakes, wanted {n}"
            )

    def wait_for(self, pred: Callable[[], bool], timeout: float = WAIT) -> None:
        with self._cond:
            assert self._cond.wait_for(pred, timeout)

    def wait_received(self, n: int, timeout: float = WAIT) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.received) >= n, timeout)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.prefix}"

    def close(self) -> None:
        async def go() -> None:
            for ws in self._open():
                await ws.close()
            await self._runner.cleanup()

        self._call(go())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_listener() -> Iterator[Callable[..., Tuple[Listener, EventBus, Recorder]]]:
    """Builds listeners on fresh buses and stops every one of them at teardown."""
    made: List[Tuple[Listener, HttpTransport]] = []

    def build(
        url: str,
        client_id: str = "0123456789abcdef",
        transport_kw: Optional[Dict[str, Any]] = None,
        attribute: bool = False,
        **kw: Any,
    ) -> Tuple[Listener, EventBus, Recorder]:
        """``attribute``: pass events through the client's attribution step first (the
        listener itself attributes nothing)."""
        transport = HttpTransport(url, **(transport_kw or {}))
        bus = EventBus()
        recorder = Recorder(bus)
        kw.setdefault("rng", random.Random(1234))
        sink: Callable[[ev.Event], None] = bus.emit
        if attribute:
            attribution = Attribution()
            sink = lambda e: bus.emit(attribution.attribute(e))  # noqa: E731
        listener = Listener(transport, client_id, sink, **kw)
        made.append((listener, transport))
        return listener, bus, recorder

    yield build
    for listener, transport in made:
        listener.stop()
        transport.close()
    assert _listener_threads() == []


def status(remaining: int) -> Dict[str, Any]:
    return {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}


# --------------------------------------------------------------------------- connect / stop


def test_start_sends_feature_flags_first_and_returns_after_greeting(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(scripted.url, client_id="abcdef0123456789")
    listener.start(timeout=WAIT)
    assert listener.connected
    assert listener.sid == "abcdef0123456789"
    threads = _listener_threads()
    assert [t.name for t in threads] == ["comfysync-listener-abcdef01"]
    assert threads[0].daemon
    # Connected, then the greeting itself, already dispatched when start() returned.
    assert [type(e) for e in rec.events[:2]] == [ev.Connected, ev.Status]
    assert rec.events[0].sid == "abcdef0123456789"  # type: ignore[attr-defined]
    scripted.wait_received(1)
    assert scripted.received[0] == {
        "type": "feature_flags",
        "data": {"supports_preview_metadata": True},
    }
    rec.wait_count(ev.FeatureFlags)
    assert listener.server_features == {"supports_preview_metadata": True}
    _, _, query = scripted.handshakes[0]
    assert query == {"clientId": "abcdef0123456789"}


def test_stop_joins_thread_and_is_idempotent(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    listener.stop()
    assert _listener_threads() == []
    assert not listener.connected
    assert isinstance(rec.events[-1], ev.Disconnected)
    assert rec.events[-1].reason == "closed by the client"
    listener.stop()  # idempotent
    # and it can start again
    listener.start(timeout=WAIT)
    assert listener.connected
    listener.stop()
    assert _listener_threads() == []


def test_stop_from_inside_a_callback(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    bus.on("progress", lambda e: listener.stop())
    frames = b""
    for message in ({"type": "progress", "data": {"value": 1, "max": 2, "node": "1"}},
                    status(9)):
        text = json.dumps(message).encode()
        frames += bytes([0x81, len(text)]) + text  # unmasked text frames, one TCP write
    scripted.send_raw(frames)
    rec.wait_count(ev.Disconnected)
    for t in _listener_threads():
        t.join(WAIT)
    assert _listener_threads() == []
    # nothing is dispatched after stop(), not even what came in the same read
    assert [e.type for e in rec.events[-2:]] == ["progress", "disconnected"]


def test_handshake_carries_auth_and_extra_headers(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, _, _ = make_listener(
        scripted.url, transport_kw={"token": "s3cret-token", "headers": {"X-Extra": "yes"}}
    )
    listener.start(timeout=WAIT)
    _, headers, _ = scripted.handshakes[0]
    assert headers["Authorization"] == "Bearer s3cret-token"
    assert headers["X-Extra"] == "yes"
    assert "Origin" not in headers  # a proxied Origin could trip ComfyUI's origin check


def test_basic_auth_on_handshake(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, _, _ = make_listener(scripted.url, transport_kw={"auth": ("user", "pw")})
    listener.start(timeout=WAIT)
    _, headers, _ = scripted.handshakes[0]
    assert headers["Authorization"] == "Basic dXNlcjpwdw=="


def test_path_prefix_is_kept() -> None:
    server = ScriptedServer(prefix="/comfy")
    try:
        transport = HttpTransport(server.url)
        listener = Listener(transport, "prefixclient0000", EventBus().emit)
        try:
            listener.start(timeout=WAIT)
            assert listener.connected
            assert listener.url == f"ws://127.0.0.1:{server.port}/comfy/ws"
        finally:
            listener.stop()
            transport.close()
    finally:
        server.close()


def test_wss_url_follows_https() -> None:
    transport = HttpTransport("https://example.invalid:8443/comfy", verify=False)
    listener = Listener(transport, "c" * 16, EventBus().emit)
    assert listener.url == "wss://example.invalid:8443/comfy/ws"
    assert transport.ws_sslopt()["check_hostname"] is False
    transport.close()


def test_refused_handshake_raises_with_status_and_leaves_no_thread(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    scripted.refuse = 403
    listener, _, rec = make_listener(scripted.url, transport_kw={"token": "s3cret-token"})
    with pytest.raises(ComfyConnectionError) as info:
        listener.start(timeout=WAIT)
    message = str(info.value)
    assert "403" in message
    assert f"ws://127.0.0.1:{scripted.port}/ws" in message
    assert "s3cret" not in message
    assert info.value.url == f"ws://127.0.0.1:{scripted.port}/ws"
    assert _listener_threads() == []
    assert not listener.connected
    assert rec.events == []


def test_connection_refused_raises(make_listener: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener, _, _ = make_listener(f"http://127.0.0.1:{port}")
    with pytest.raises(ComfyConnectionError, match="refused"):
        listener.start(timeout=WAIT)
    assert _listener_threads() == []


def test_start_timeout_when_server_never_greets(make_listener: Any) -> None:
    with socket.socket() as silent:  # accepts TCP, never answers the upgrade
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        listener, _, _ = make_listener(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as info:
            listener.start(timeout=0.5)
        assert time.monotonic() - started < 3.0
        assert isinstance(info.value, ComfyTimeoutError)
        assert isinstance(info.value, ComfyConnectionError)
        assert _listener_threads() == []


# --------------------------------------------------------------------------- frames


def test_malformed_truncated_and_unknown_frames_are_skipped(
    scripted: ScriptedServer, make_listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    scripted.send_text('{"type": "status", "data": ')  # bad JSON
    scripted.send_text('["not", "an", "object"]')
    scripted.send_text('{"type": "progress", "data": {"value": "x", "max": 2}}')
    scripted.send_bytes(b"\x00\x00")  # shorter than the event type
    scripted.send_bytes(struct.pack(">II", 4, 500) + b"{}")  # metadata longer than the frame
    scripted.send_json({"type": "crystools.monitor", "data": {"cpu_utilization": 3}})
    scripted.send_bytes(struct.pack(">I", 9) + b"xyz")
    scripted.send_json(status(7))
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 7 for e in evs))
    unknown = rec.of(ev.UnknownEvent)
    assert [u.type for u in unknown] == ["crystools.monitor", "binary:9"]
    assert listener.connected
    warnings = [r for r in caplog.records if r.name == "comfysync.listener"]
    assert len(warnings) == 5
    assert all("skipped a malformed frame" in r.getMessage() for r in warnings)


def test_a_frame_that_breaks_the_decoder_is_skipped(
    scripted: ScriptedServer, make_listener: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing a frame contains may end the thread: absurd nesting (RecursionError inside
    json) and any other decoder failure are logged and skipped like malformed frames."""
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    scripted.send_text('{"type": "x.deep", "data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    scripted.send_json(status(5))
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 5 for e in evs))
    import comfysync._ws.listener as listener_module

    def broken(payload: Any) -> ev.Event:
        raise KeyError("decoder bug")

    monkeypatch.setattr(listener_module, "decode_text", broken)
    scripted.send_json(status(6))
    scripted.send_bytes(struct.pack(">II", 1, 1) + JPEG)  # binary frames still decode
    rec.wait_count(ev.Preview)
    assert listener.connected and listener.alive
    assert rec.of(ev.Disconnected) == []


def test_raising_callback_does_not_stop_the_listener(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(scripted.url)
    seen: List[Any] = []
    bus.exception_handler = lambda exc, event, cb: seen.append((type(exc), event.type))

    def boom(event: ev.Event) -> None:
        raise RuntimeError("callback bug")

    bus.on("status", boom)
    after = threading.Event()
    bus.on("status", lambda e: e.queue_remaining == 3 and after.set())
    listener.start(timeout=WAIT)
    scripted.send_json(status(3))
    assert after.wait(WAIT)  # a later callback of the same event still ran
    assert seen == [(RuntimeError, "status"), (RuntimeError, "status")]
    assert listener.connected


def test_type1_previews_are_attributed_to_the_running_node(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(scripted.url, attribute=True)
    listener.start(timeout=WAIT)
    scripted.send_bytes(struct.pack(">II", 1, 2) + PNG)  # nothing running yet
    scripted.send_json(
        {"type": "executing", "data": {"node": "5", "display_node": "5", "prompt_id": "p1"}}
    )
    scripted.send_bytes(struct.pack(">II", 1, 1) + JPEG)
    scripted.send_json(
        {"type": "progress", "data": {"value": 1, "max": 2, "node": "6", "prompt_id": "p1"}}
    )
    scripted.send_bytes(struct.pack(">II", 1, 1) + JPEG)
    node = b"6"
    scripted.send_bytes(struct.pack(">II", 3, len(node)) + node + b"hello")
    meta = json.dumps({"node_id": "9", "prompt_id": "p2", "image_type": "image/png"}).encode()
    scripted.send_bytes(struct.pack(">II", 4, len(meta)) + meta + PNG)  # has its own ids
    scripted.send_json({"type": "executing", "data": {"node": None, "prompt_id": "p1"}})
    scripted.send_bytes(struct.pack(">II", 1, 2) + PNG)
    previews = rec.wait_count(ev.Preview, 5)
    assert [(p.prompt_id, p.node_id, p.event_type) for p in previews] == [
        (None, None, 1),
        ("p1", "5", 1),
        ("p1", "6", 1),
        ("p2", "9", 4),
        (None, None, 1),
    ]
    assert previews[1].mime_type == "image/jpeg"
    assert previews[0].mime_type == "image/png"
    (text,) = rec.of(ev.ProgressText)
    assert (text.text, text.node_id, text.prompt_id) == ("hello", "6", "p1")


def test_events_dispatched_in_arrival_order(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    for i in range(200):
        scripted.send_json(status(i))
    rec.wait(lambda evs: sum(isinstance(e, ev.Status) for e in evs) >= 201)
    values = [e.queue_remaining for e in rec.of(ev.Status)[1:]]
    assert values == list(range(200))


# --------------------------------------------------------------------------- reconnect


def test_drop_then_reconnect_with_same_client_id(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    ready: List[bool] = []
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=0.01, backoff_cap=0.05, on_socket_ready=ready.append
    )
    listener.start(timeout=WAIT)
    scripted.wait_received(1)
    scripted.drop()
    rec.wait_count(ev.Reconnected)
    kinds = [type(e) for e in rec.events if not isinstance(e, (ev.Status, ev.FeatureFlags))]
    assert kinds == [ev.Connected, ev.Disconnected, ev.Reconnecting, ev.Reconnected]
    disconnected = rec.of(ev.Disconnected)[0]
    assert disconnected.code == 1001
    reconnecting = rec.of(ev.Reconnecting)[0]
    assert reconnecting.attempt == 1 and 0 <= reconnecting.delay <= 0.01
    assert rec.of(ev.Reconnected)[0].attempt == 1
    assert ready == [False, True]
    assert [q["clientId"] for _, _, q in scripted.handshakes] == ["0123456789abcdef"] * 2
    scripted.wait_received(2)  # feature flags again, first frame of the new socket
    assert scripted.received[1]["type"] == "feature_flags"
    assert listener.connected
    assert len(_listener_threads()) == 1


class CeilingRandom(random.Random):
    """Jitter that always picks the top of the range, so delays show the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_greeted_connections_reset_the_backoff(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """A server that greets and hangs up at once: each greeting is a good connection, so
    every outage starts again from the base delay instead of climbing to the cap."""
    scripted.close_after_greeting = True
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=0.01, backoff_cap=0.08, rng=CeilingRandom()
    )
    listener.start(timeout=WAIT)
    rec.wait_count(ev.Reconnecting, 5)
    listener.stop()
    delays = [e.delay for e in rec.of(ev.Reconnecting)][:5]
    assert delays == pytest.approx([0.01] * 5)
    assert all(e.attempt == 1 for e in rec.of(ev.Reconnecting))  # each outage: one attempt


def test_failures_before_the_greeting_keep_growing_the_backoff(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """Sockets closed before their greeting are failed attempts: the delay doubles up to the
    cap, and it does not start over until a greeting arrives."""
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=0.01, backoff_cap=0.08, rng=CeilingRandom(), max_attempts=5
    )
    listener.start(timeout=WAIT)
    scripted.close_before_greeting = True
    scripted.drop()
    rec.wait_count(ev.ReconnectionFailed)
    delays = [e.delay for e in rec.of(ev.Reconnecting)]
    assert delays == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08])


def test_protocol_error_drops_and_reconnects(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url, backoff_base=0.01, backoff_cap=0.02)
    listener.start(timeout=WAIT)
    scripted.send_raw(bytes([0xC1, 0x01]) + b"A")  # RSV1 set: no extension was negotiated
    rec.wait_count(ev.Reconnected)
    assert "protocol error" in rec.of(ev.Disconnected)[0].reason
    assert listener.connected


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked frame as a server writes it."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes([b0, n]) + payload
    if n < 1 << 16:
        return bytes([b0, 126]) + struct.pack(">H", n) + payload
    return bytes([b0, 127]) + struct.pack(">Q", n) + payload


def test_a_pong_before_the_greeting_is_not_an_event(
    scripted: ScriptedServer, make_listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Unsolicited pongs are allowed (RFC 6455 §5.5.3) and mean nothing: not a binary event
    (this payload would decode as a type-3 text), not a warning."""
    scripted.raw_before_greeting = ws_frame(0xA, struct.pack(">II", 3, 0) + b"hi")
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    scripted.send_json(status(3))
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 3 for e in evs))
    assert rec.of(ev.ProgressText) == []
    assert [r for r in caplog.records if r.name == "comfysync.listener"] == []


def test_pings_are_answered_with_their_payload_and_pongs_ignored(
    scripted: ScriptedServer, make_listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.autoping = False
    scripted.raw_before_greeting = ws_frame(0x9, b"early")
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    fragments = (
        ws_frame(0x1, b'{"type": "status", ', fin=False)
        + ws_frame(0x9, b"\x00\xffmid")  # between fragments
        + ws_frame(0xA, struct.pack(">II", 3, 0) + b"x")
        + ws_frame(0x0, b'"data": {"status": {"exec_info": {"queue_remaining": 4}}}}')
    )
    scripted.send_raw(fragments)
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 4 for e in evs))
    scripted.wait_for(lambda: len(scripted.control) >= 2)
    assert scripted.control == [("PONG", b"early"), ("PONG", b"\x00\xffmid")]
    assert rec.of(ev.ProgressText) == []
    assert [r for r in caplog.records if r.name == "comfysync.listener"] == []


def test_server_close_frame_is_answered_and_reported(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """A close frame (code + reason) is answered with a close frame echoing the code, the
    drop reports both, and the listener reconnects."""
    listener, bus, rec = make_listener(scripted.url, backoff_base=0.01, backoff_cap=0.02)
    listener.start(timeout=WAIT)
    scripted.send_raw(ws_frame(0x8, struct.pack(">H", 1001) + "redémarrage".encode()))
    rec.wait_count(ev.Reconnected)
    disconnected = rec.of(ev.Disconnected)[0]
    assert disconnected.code == 1001
    assert "redémarrage" in disconnected.reason
    scripted.wait_for(lambda: len(scripted.close_codes) >= 1)
    assert scripted.close_codes[0] == 1001


def test_protocol_error_is_answered_with_close_1002(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.send_raw(bytes([0x81, 0x85]) + b"\x00" * 4 + b"hello")  # masked: servers never mask
    rec.wait_count(ev.ReconnectionFailed)
    assert "masked" in rec.of(ev.Disconnected)[0].reason
    scripted.wait_for(lambda: len(scripted.close_codes) >= 1)
    assert scripted.close_codes[0] == 1002


def test_invalid_utf8_text_frame_is_skipped_not_fatal(
    scripted: ScriptedServer, make_listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    scripted.send_raw(ws_frame(0x1, b'{"type": "x.custom", "data": "\xed\xa0\x80"}'))
    scripted.send_json(status(5))
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 5 for e in evs))
    assert rec.of(ev.UnknownEvent) == [] and rec.of(ev.Disconnected) == []
    assert any("UTF-8" in r.getMessage() for r in caplog.records)


def test_seven_megabyte_preview_arrives_whole(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """SaveImageWebsocket sends full-size PNGs as one type-1 frame (64-bit length)."""
    image = PNG + bytes(range(256)) * (7 * 4096)
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    scripted.send_bytes(struct.pack(">II", 1, 2) + image)
    preview = rec.wait_count(ev.Preview)[0]
    assert preview.image == image and preview.mime_type == "image/png"


def test_partial_frame_at_eof_is_a_drop(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url, backoff_base=0.01, backoff_cap=0.02)
    listener.start(timeout=WAIT)
    frame = ws_frame(0x2, struct.pack(">II", 1, 2) + PNG * 100)
    scripted.send_raw(frame[:1000])
    scripted.abort()
    rec.wait_count(ev.Reconnected)
    assert rec.of(ev.Preview) == []
    assert "connection lost" in rec.of(ev.Disconnected)[0].reason


def test_stop_during_a_large_frame(scripted: ScriptedServer, make_listener: Any) -> None:
    """The thread blocks in recv with half of a 7 MB frame buffered: stop() still ends it
    promptly and nothing half-read is dispatched."""
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    frame = ws_frame(0x2, struct.pack(">II", 1, 2) + PNG + bytes(7 << 20))
    scripted.send_raw(frame[: len(frame) // 2])
    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < 2.0
    assert _listener_threads() == []
    assert rec.of(ev.Preview) == []
    assert rec.events[-1] == ev.Disconnected("closed by the client")


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=WAIT,
        )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("openssl is needed to make a test certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context


def test_wss_delivers_frames_buffered_inside_tls(
    tls_context: ssl.SSLContext, make_listener: Any
) -> None:
    """Over TLS one record holds many frames and recv returns what the SSL object already
    decrypted: a burst ending in a small frame, then a 7 MB one, must arrive without the
    socket becoming readable again (ping_interval is long, so a stall would time out)."""
    server = ScriptedServer(ssl_context=tls_context)
    try:
        listener, bus, rec = make_listener(server.url, transport_kw={"verify": False})
        listener.start(timeout=WAIT)
        burst = b"".join(
            ws_frame(0x1, json.dumps(status(n)).encode()) for n in range(1, 201)
        )
        server.send_raw(burst)
        rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 200
                                 for e in evs))
        image = PNG + bytes(range(256)) * (7 * 4096)
        server.send_bytes(struct.pack(">II", 1, 2) + image)
        server.send_json(status(201))
        rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 201
                                 for e in evs))
        assert rec.of(ev.Preview)[0].image == image
        counts = [e.queue_remaining for e in rec.of(ev.Status)]
        assert counts[-201:] == list(range(1, 202))
        listener.stop()
    finally:
        server.close()


def test_reconnect_false_ends_the_thread(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(scripted.url, reconnect=False)
    listener.start(timeout=WAIT)
    scripted.drop()
    rec.wait_count(ev.Disconnected)
    deadline = time.monotonic() + WAIT
    while listener.alive and time.monotonic() < deadline:
        for t in _listener_threads():
            t.join(0.1)
    assert not listener.alive
    assert rec.of(ev.Reconnecting) == []
    failed = rec.wait_count(ev.ReconnectionFailed)
    assert failed[0].attempts == 0 and "disabled" in (failed[0].last_error or "")
    assert isinstance(rec.events[-1], ev.ReconnectionFailed)


def _rate_is_bounded(times: List[float], base: float, cap: float) -> None:
    """Handshake n+1 cannot come before the backoff of attempt n could have elapsed... on
    average: the total time of k attempts must be well above zero, and no burst of many
    handshakes may happen inside one cap interval."""
    assert len(times) >= 3
    gaps = [b - a for a, b in zip(times, times[1:])]
    # With full jitter single gaps can be tiny, but the count inside any cap-wide window is
    # bounded: a spinning client would make hundreds.
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u - t < cap)
        assert in_window <= 12, f"{in_window} handshakes within {cap} s: {gaps}"


def test_403_storm_gives_bounded_attempt_rate_then_reconnection_failed(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    base, cap = 0.02, 0.2
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=base, backoff_cap=cap, max_attempts=8
    )
    listener.start(timeout=WAIT)
    scripted.refuse = 403
    scripted.drop()
    failed = rec.wait_count(ev.ReconnectionFailed)[0]
    assert failed.attempts == 8
    assert "403" in (failed.last_error or "")
    attempts = [e.attempt for e in rec.of(ev.Reconnecting)]
    assert attempts == list(range(1, 9))
    # Delays follow the schedule: uniform(0, min(cap, base * 2**(n-1))).
    for e in rec.of(ev.Reconnecting):
        assert 0 <= e.delay <= min(cap, base * 2 ** (e.attempt - 1))
    times = [t for t, _, _ in scripted.handshakes[1:]]
    assert len(times) == 8  # exactly one handshake per attempt: no hidden retries
    _rate_is_bounded(times, base, cap)
    assert not listener.connected
    for t in _listener_threads():
        t.join(WAIT)
    assert not listener.alive


def test_server_closing_before_greeting_counts_as_failed_attempt(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=0.01, backoff_cap=0.05, max_attempts=4
    )
    listener.start(timeout=WAIT)
    scripted.close_before_greeting = True
    scripted.drop()
    failed = rec.wait_count(ev.ReconnectionFailed)[0]
    assert failed.attempts == 4
    assert rec.of(ev.Reconnected) == []
    assert len(scripted.handshakes) == 5


def test_pending_work_keeps_reconnecting_past_max_attempts(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    pending = threading.Event()
    pending.set()
    listener, bus, rec = make_listener(
        scripted.url,
        backoff_base=0.005,
        backoff_cap=0.02,
        max_attempts=2,
        has_pending_work=pending.is_set,
    )
    listener.start(timeout=WAIT)
    scripted.refuse = 403
    scripted.drop()
    rec.wait_count(ev.Reconnecting, 6)  # far beyond max_attempts
    assert rec.of(ev.ReconnectionFailed) == []
    scripted.refuse = None
    reconnected = rec.wait_count(ev.Reconnected)[0]
    assert reconnected.attempt >= 6
    assert listener.connected


def test_stop_interrupts_backoff_wait(scripted: ScriptedServer, make_listener: Any) -> None:
    listener, bus, rec = make_listener(
        scripted.url, backoff_base=30.0, backoff_cap=30.0, rng=random.Random(0)
    )
    listener.start(timeout=WAIT)
    scripted.refuse = 403
    scripted.drop()
    rec.wait(lambda evs: any(isinstance(e, ev.Reconnecting) and e.delay > 1 for e in evs))
    started = time.monotonic()
    listener.stop()
    assert time.monotonic() - started < 2.0
    assert _listener_threads() == []


def test_no_answer_to_ping_is_a_dead_connection(make_listener: Any) -> None:
    """A peer that greets and then goes silent (no pong) is dropped after two intervals."""

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    conns: List[socket.socket] = []

    def accept_and_go_silent() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conns.append(conn)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = [
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            ][0]
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            greeting = json.dumps({**status(0), "data": {**status(0)["data"], "sid": "x"}}).encode()
            conn.sendall(bytes([0x81, len(greeting)]) + greeting)

    acceptor = threading.Thread(target=accept_and_go_silent, daemon=True)
    acceptor.start()
    try:
        listener, bus, rec = make_listener(
            f"http://127.0.0.1:{port}",
            ping_interval=0.1,
            backoff_base=0.01,
            backoff_cap=0.01,
            max_attempts=1,
        )
        listener.start(timeout=WAIT)
        disconnected = rec.wait_count(ev.Disconnected)[0]
        assert "ping" in disconnected.reason
        listener.stop()
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        server.close()
        for c in conns:
            c.close()
        acceptor.join(WAIT)
        assert not acceptor.is_alive()


# --------------------------------------------------------------------------- against FakeComfyUI


def _post_prompt(server: Any, client_id: str, steps: int = 2, preview: str = "JPEG",
                 delay_ms: int = 0) -> str:
    """POST a prompt (progress bar with previews, then SaveImage) as ``client_id``."""
    prompt_id = str(uuid.uuid4())
    workflow = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 3368601},
        },
        "2": {
            "class_type": "ProbeProgress",
            "inputs": {
                "image": ["1", 0],
                "steps": steps,
                "delay_ms": delay_ms,
                "preview": preview,
                "seed": random.randint(0, 1 << 30),
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
    }
    body = {"prompt": workflow, "client_id": client_id, "prompt_id": prompt_id}
    response = requests.post(f"{server.url}/prompt", json=body, timeout=WAIT)
    assert response.status_code == 200, response.text
    return prompt_id


def _ws_handshakes(server: Any) -> int:
    return sum(1 for r in server.requests if r.path in ("/ws", "/api/ws"))


def _finished(prompt_id: str) -> Callable[[List[ev.Event]], bool]:
    return lambda evs: any(
        isinstance(e, ev.Executing) and e.node is None and e.prompt_id == prompt_id for e in evs
    )


def test_fake_server_connect_and_feature_flags(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(fake_server.url, client_id="fakeclient0000001")
    listener.start(timeout=WAIT)
    fake_server.wait_for_client("fakeclient0000001")
    flags = rec.wait_count(ev.FeatureFlags)[0]
    assert flags.flags["supports_preview_metadata"] is True
    assert "max_upload_size" in flags.flags
    assert listener.server_features == flags.flags
    assert [r.query.get("clientId") for r in fake_server.requests if r.path == "/ws"] == [
        "fakeclient0000001"
    ]


def test_fake_server_type4_previews_carry_ids(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(fake_server.url, client_id="previews4client00")
    listener.start(timeout=WAIT)
    rec.wait_count(ev.FeatureFlags)  # negotiated before the prompt runs
    prompt_id = _post_prompt(fake_server, "previews4client00", steps=3)
    rec.wait(_finished(prompt_id))
    previews = rec.of(ev.Preview)
    assert len(previews) == 3
    assert {(p.event_type, p.prompt_id, p.node_id, p.mime_type) for p in previews} == {
        (4, prompt_id, "2", "image/jpeg")
    }
    progress = [e for e in rec.of(ev.Progress) if e.prompt_id == prompt_id]
    assert [(e.value, e.max) for e in progress] == [(1, 3), (2, 3), (3, 3)]


def test_fake_server_type1_previews_are_attributed(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(
        fake_server.url, client_id="previews1client00", feature_flags={}, attribute=True
    )
    listener.start(timeout=WAIT)
    prompt_id = _post_prompt(fake_server, "previews1client00", steps=2, preview="PNG")
    rec.wait(_finished(prompt_id))
    previews = rec.of(ev.Preview)
    assert len(previews) == 2
    assert {(p.event_type, p.prompt_id, p.node_id, p.mime_type) for p in previews} == {
        (1, prompt_id, "2", "image/png")
    }


def test_fake_server_drop_and_reconnect_same_client_id(
    fake_server: Any, make_listener: Any
) -> None:
    ready: List[bool] = []
    listener, bus, rec = make_listener(
        fake_server.url,
        client_id="dropclient000001",
        backoff_base=0.01,
        backoff_cap=0.05,
        on_socket_ready=ready.append,
    )
    listener.start(timeout=WAIT)
    rec.wait_count(ev.FeatureFlags)
    fake_server.drop_websockets()
    rec.wait_count(ev.Reconnected)
    fake_server.wait_for_client("dropclient000001")
    rec.wait_count(ev.FeatureFlags, 2)  # negotiated again on the new socket
    assert ready == [False, True]
    assert [r.query.get("clientId") for r in fake_server.requests if r.path == "/ws"] == [
        "dropclient000001"
    ] * 2
    # the new socket works: a prompt's events arrive
    prompt_id = _post_prompt(fake_server, "dropclient000001", steps=1)
    rec.wait(_finished(prompt_id))


def test_fake_server_abrupt_drop(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(
        fake_server.url, client_id="abruptclient0001", backoff_base=0.01, backoff_cap=0.05
    )
    listener.start(timeout=WAIT)
    fake_server.drop_websockets(abrupt=True)
    rec.wait_count(ev.Reconnected)
    disconnected = rec.of(ev.Disconnected)[0]
    assert disconnected.code is None
    assert listener.connected


def test_fake_server_403_storm_bounded_by_backoff(fake_server: Any, make_listener: Any) -> None:
    base, cap, attempts = 0.02, 0.1, 10
    listener, bus, rec = make_listener(
        fake_server.url,
        client_id="stormclient00001",
        backoff_base=base,
        backoff_cap=cap,
        max_attempts=attempts,
    )
    listener.start(timeout=WAIT)
    fake_server.refuse_websockets(None)
    started = time.monotonic()
    fake_server.drop_websockets()
    failed = rec.wait_count(ev.ReconnectionFailed)[0]
    elapsed = time.monotonic() - started
    assert failed.attempts == attempts
    assert "403" in (failed.last_error or "")
    # exactly one handshake per attempt, each after its own backoff delay
    assert _ws_handshakes(fake_server) == 1 + attempts
    delays = [e.delay for e in rec.of(ev.Reconnecting)]
    assert len(delays) == attempts
    assert elapsed >= sum(delays)
    for n, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(cap, base * 2 ** (n - 1))
    assert not listener.connected


def test_fake_server_refusals_then_recovery(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(
        fake_server.url, client_id="refuseclient0001", backoff_base=0.01, backoff_cap=0.02
    )
    listener.start(timeout=WAIT)
    fake_server.refuse_websockets(3)
    fake_server.drop_websockets()
    reconnected = rec.wait_count(ev.Reconnected)[0]
    assert reconnected.attempt == 4
    assert [e.attempt for e in rec.of(ev.Reconnecting)] == [1, 2, 3, 4]


def test_fake_server_restart(fake_server: Any, make_listener: Any) -> None:
    listener, bus, rec = make_listener(
        fake_server.url, client_id="restartclient001", backoff_base=0.02, backoff_cap=0.1
    )
    listener.start(timeout=WAIT)
    fake_server.restart(downtime=0.2)
    rec.wait_count(ev.Reconnected)
    fake_server.wait_for_client("restartclient001")
    prompt_id = _post_prompt(fake_server, "restartclient001", steps=1)
    rec.wait(_finished(prompt_id))


def test_fake_server_bad_frames_are_skipped(
    fake_server: Any, make_listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener, bus, rec = make_listener(fake_server.url, client_id="badframesclient1")
    bus.on("x.custom", lambda e: 1 / 0)  # a raising callback on top
    listener.start(timeout=WAIT)
    fake_server.send_malformed_json()
    fake_server.send_truncated_binary()
    fake_server.send_truncated_binary(frame=struct.pack(">II", 4, 99) + b"{")
    fake_server.send_unknown_message()
    fake_server.send_message("status", {"status": {"exec_info": {"queue_remaining": 5}}})
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 5 for e in evs))
    assert [e.type for e in rec.of(ev.UnknownEvent)] == ["x.custom"]
    skipped = [r for r in caplog.records if "skipped a malformed frame" in r.getMessage()]
    assert len(skipped) == 3
    assert listener.connected
    prompt_id = _post_prompt(fake_server, "badframesclient1", steps=1)
    rec.wait(_finished(prompt_id))


def test_fake_server_reconnect_mid_run_keeps_attribution(
    fake_server: Any, make_listener: Any
) -> None:
    """After a reconnect mid-run the server repeats the node without prompt_id (§11.5 H);
    type-1 previews after it still belong to the prompt."""
    listener, bus, rec = make_listener(
        fake_server.url,
        client_id="midrunclient0001",
        feature_flags={},
        attribute=True,
        backoff_base=0.01,
        backoff_cap=0.02,
    )
    listener.start(timeout=WAIT)
    first_progress = threading.Event()
    bus.on("progress", lambda e: first_progress.set())
    prompt_id = _post_prompt(fake_server, "midrunclient0001", steps=6, delay_ms=150)
    assert first_progress.wait(WAIT)
    fake_server.drop_websockets()
    rec.wait_count(ev.Reconnected)
    rec.wait(_finished(prompt_id))
    after = rec.events[rec.events.index(rec.of(ev.Reconnected)[0]) :]
    repeated = [e for e in after if isinstance(e, ev.Executing) and e.node is not None]
    if repeated and repeated[0].prompt_id is None:  # the server repeated the running node
        assert repeated[0].node == "2"
    previews_after = [e for e in after if isinstance(e, ev.Preview)]
    assert previews_after, "the run should still be sending previews after the reconnect"
    assert {(p.prompt_id, p.node_id) for p in previews_after} == {(prompt_id, "2")}
