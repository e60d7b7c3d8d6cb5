"""Fault injection for FakeComfyUI's HTTP side: response delay, canned failures per route,
refused WebSocket handshakes, plus the request log tests use to see what a client sent.

The state is shared between the test's thread (which sets faults) and the server's event
loop (which applies them in a middleware), so every access goes through one lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional

from aiohttp import web
from attrs import define, field

log = logging.getLogger("comfysync.testing.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: the body the real server sends for an unhandled exception (aiohttp's default)
INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


@define(frozen=True)
class RequestRecord:
    """One request as the server saw it (headers as sent; for assertions in tests)."""

    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]


@define
class _RouteFailure:
    path: str
    status: int
    body: Any
    method: Optional[str]
    times: Optional[int]


def _strip_api(path: str) -> str:
    return path[4:] if path.startswith("/api/") else path


@define
class Faults:
    """Mutable fault settings; methods are thread-safe."""

    _lock: threading.Lock = field(factory=threading.Lock)
    _delay: float = 0.0
    _failures: List[_RouteFailure] = field(factory=list)
    _refuse: int = 0
    _refuse_all: bool = False
    _requests: List[RequestRecord] = field(factory=list)
    max_requests: int = 10000

    def set_delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = max(0.0, float(seconds))

    def fail_route(
        self, path: str, status: int, body: Any = None, times: Optional[int] = None,
        method: Optional[str] = None,
    ) -> None:
        with self._lock:
            self._failures.append(
                _RouteFailure(path, int(status), body, method.upper() if method else None, times)
            )

    def refuse_websockets(self, count: Optional[int]) -> None:
        with self._lock:
            if count is None:
                self._refuse_all = True
            else:
                self._refuse = max(0, int(count))

    def accept_websockets(self) -> None:
        with self._lock:
            self._refuse_all = False
            self._refuse = 0

    def take_ws_refusal(self) -> bool:
        """True when this handshake must be refused (consumes one of ``count``)."""
        with self._lock:
            if self._refuse_all:
                return True
            if self._refuse > 0:
                self._refuse -= 1
                return True
            return False

    def clear(self) -> None:
        with self._lock:
            self._delay = 0.0
            self._failures.clear()
            self._refuse = 0
            self._refuse_all = False

    def requests(self) -> List[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _match(self, request: web.Request) -> Optional[_RouteFailure]:
        with self._lock:
            for failure in self._failures:
                wanted = failure.path
                path = request.path if wanted.startswith("/api/") else _strip_api(request.path)
                if path != wanted or (failure.method and failure.method != request.method):
                    continue
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _record(self, request: web.Request) -> float:
        with self._lock:
            if len(self._requests) >= self.max_requests:
                del self._requests[0]
            self._requests.append(
                RequestRecord(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                )
            )
            return self._delay

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        delay = self._record(request)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self._match(request)
        if failure is not None:
            return failure_response(failure.status, failure.body)
        return await handler(request)


def failure_response(status: int, body: Any) -> web.Response:
    """A canned answer: JSON for dicts/lists, text for str, raw for bytes, else empty."""
    if isinstance(body, (dict, list)):
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")
    if isinstance(body, str):
        return web.Response(status=status, text=body, content_type="text/plain")
    if isinstance(body, (bytes, bytearray)):
        return web.Response(status=status, body=bytes(body))
    return web.Response(status=status)


@web.middleware
async def internal_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unhandled exceptions → the real server's plain-text 500 (malformed JSON bodies, …)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.debug("handler %s %s raised", request.method, request.path, exc_info=True)
        return web.Response(status=500, text=INTERNAL_ERROR_TEXT, content_type="text/plain")
