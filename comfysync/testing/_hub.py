"""FakeComfyUI's WebSocket side: the socket registry, the ``/ws`` handler and the publisher.

Like ComfyUI, every message produced by the worker thread goes through one asyncio queue and
is delivered by one task, and *who receives it is decided at delivery time* from the
registry ``client id → socket``. That single design choice reproduces the real routing
quirks: events sent while a client is away are lost, and when a socket that was replaced by a
reconnect with the same ``clientId`` finally closes, it unregisters the *new* socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from aiohttp import WSMsgType, web

log = logging.getLogger("comfysync.testing.hub")

BIN_PREVIEW = 1
BIN_TEXT = 3
BIN_PREVIEW_WITH_METADATA = 4

#: ("json", event, data) | ("bytes", payload) | ("raw", text)
_Item = Tuple[str, Any, Any]


def binary_frame(event_type: int, payload: bytes) -> bytes:
    """A binary WS frame: 4-byte big-endian event type + payload."""
    return struct.pack(">I", event_type) + payload


class Hub:
    """Socket registry + ordered delivery. Thread-safe entry points: :meth:`send_sync`,
    :meth:`send_bytes_sync`, :meth:`send_raw_sync`, :meth:`supports_preview_metadata`,
    :meth:`client_ids`, :meth:`pending`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        notify: Callable[[], None],
        server_flags: Callable[[], Dict[str, Any]],
        connect_info: Callable[[str], Tuple[Dict[str, Any], Optional[str]]],
        take_refusal: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._notify = notify
        self._server_flags = server_flags
        self._connect_info = connect_info
        self._take_refusal = take_refusal
        self._lock = threading.Lock()
        self._sockets: Dict[str, web.WebSocketResponse] = {}
        self._flags: Dict[str, Dict[str, Any]] = {}
        self._open: Dict[web.WebSocketResponse, web.Request] = {}
        self._pending = 0
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: Optional[asyncio.Task[None]] = None
        self.handshakes = 0

    # ------------------------------------------------------------- thread-safe API
    def _enqueue(self, item: _Item) -> None:
        with self._lock:
            self._pending += 1
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def send_sync(self, event: str, data: Any, sid: Optional[str] = None) -> None:
        """Queue ``{"type": event, "data": data}`` for ``sid`` (None = every socket)."""
        self._enqueue(("json", {"type": event, "data": data}, sid))

    def send_bytes_sync(self, payload: bytes, sid: Optional[str] = None) -> None:
        self._enqueue(("bytes", payload, sid))

    def send_raw_sync(self, text: str, sid: Optional[str] = None) -> None:
        """A text frame sent verbatim (fault injection: malformed JSON)."""
        self._enqueue(("raw", text, sid))

    def supports_preview_metadata(self, sid: Optional[str]) -> bool:
        if sid is None:
            return False
        with self._lock:
            return self._flags.get(sid, {}).get("supports_preview_metadata") is True

    def client_ids(self) -> List[str]:
        with self._lock:
            return list(self._sockets)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    # ------------------------------------------------------------------ loop side
    def start(self) -> None:
        self._task = self._loop.create_task(self._publish())

    async def _publish(self) -> None:
        while True:
            kind, payload, sid = await self._queue.get()
            try:
                for ws in self._targets(sid):
                    await self._send_one(ws, kind, payload)
            finally:
                with self._lock:
                    self._pending -= 1
                self._notify()

    def _targets(self, sid: Optional[str]) -> List[web.WebSocketResponse]:
        with self._lock:
            if sid is None:
                return list(self._sockets.values())
            ws = self._sockets.get(sid)
            return [ws] if ws is not None else []

    @staticmethod
    async def _send_one(ws: web.WebSocketResponse, kind: str, payload: Any) -> None:
        if ws.closed:
            return
        try:
            if kind == "json":
                await ws.send_str(json.dumps(payload))
            elif kind == "bytes":
                await ws.send_bytes(payload)
            else:
                await ws.send_str(payload)
        except (ConnectionError, RuntimeError) as exc:  # peer went away mid-send
            log.debug("send failed: %s", exc)

    async def handle(self, request: web.Request) -> Union[web.Response, web.WebSocketResponse]:
        """``GET /ws``: register, greet with ``status`` (+ ``executing`` when this client's
        prompt is running), then read client frames (only the first counts)."""
        self.handshakes += 1
        if self._take_refusal():
            return web.Response(status=403)
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        with self._lock:
            if sid:
                self._sockets.pop(sid, None)
            else:
                sid = uuid.uuid4().hex
            self._sockets[sid] = ws
            self._flags[sid] = {}
            self._open[ws] = request
        self._notify()
        try:
            queue_info, running_node = self._connect_info(sid)
            await self._send_one(
                ws, "json", {"type": "status", "data": {"status": queue_info, "sid": sid}}
            )
            if running_node is not None:
                executing = {"type": "executing", "data": {"node": running_node}}
                await self._send_one(ws, "json", executing)
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    log.warning("invalid JSON from client %s", sid)
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    flags = data.get("data", {})
                    with self._lock:
                        self._flags[sid] = flags if isinstance(flags, dict) else {}
                    await self._send_one(
                        ws, "json", {"type": "feature_flags", "data": self._server_flags()}
                    )
                first = False
        finally:
            with self._lock:
                # by id, not by socket: the real server's race
                self._sockets.pop(sid, None)
                self._flags.pop(sid, None)
                self._open.pop(ws, None)
            self._notify()
        return ws

    async def close_all(self, abrupt: bool = False) -> None:
        """Close every open socket (also replaced ones). ``abrupt`` cuts the TCP connection
        without a close frame, like a crashed server or a dead network."""
        with self._lock:
            sockets = list(self._open.items())
        if abrupt:
            for _ws, request in sockets:
                transport = request.transport
                if transport is not None:
                    transport.abort()
            return
        await asyncio.gather(
            *(ws.close(code=1001, message=b"server shutdown") for ws, _ in sockets),
            return_exceptions=True,
        )

    async def stop(self) -> None:
        await self.close_all()
        with self._lock:
            leftovers = list(self._open.values())
        for request in leftovers:
            if request.transport is not None:
                request.transport.abort()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        with self._lock:
            self._pending = 0
