"""Real HTTP servers on loopback addresses that record what they receive.

``127.0.0.1`` and ``127.0.0.2`` are different origins (Linux answers on all of 127/8), so a
server on each shows where a client's credentials went. A :class:`RecordingServer` answers
from a table of routes (exact path → :class:`Answer`) and, for any other path, either 404 or
by forwarding the request to an upstream server (a FakeComfyUI), like a reverse proxy.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from attrs import define, field

OTHER_HOST = "127.0.0.2"

SECRET_TOKEN = "tok-very-secret-0123"
SECRET_KEY = "key-very-secret-4567"
SECRET_PW = "pw-very-secret-89ab"


@define(frozen=True)
class Received:
    """One request as the server got it."""

    method: str
    path: str  #: with the query string
    headers: Dict[str, str]  #: names lower-cased
    body: bytes
    at: float = 0.0  #: time.monotonic() on arrival

    def carries_secret(self) -> bool:
        text = " ".join(self.headers.values())
        lowered = {k for k in self.headers}
        return (
            "authorization" in lowered
            or "x-api-key" in lowered
            or any(s in text for s in (SECRET_TOKEN, SECRET_KEY, SECRET_PW))
        )


@define
class Answer:
    """A canned answer: status, headers, body."""

    status: int = 200
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""


Route = Union[Answer, Callable[[Received], Answer]]


def redirect(location: str, status: int = 302) -> Answer:
    return Answer(status, {"Location": location, "Content-Length": "0"})


def json_answer(text: str, status: int = 200, headers: Optional[Mapping[str, str]] = None
                ) -> Answer:
    return Answer(status, {"Content-Type": "application/json", **(headers or {})},
                  text.encode())


class RecordingServer:
    """A threaded HTTP server on ``host`` (ephemeral port) that records every request."""

    def __init__(self, host: str = "127.0.0.1", routes: Optional[Dict[str, Route]] = None,
                 upstream: Optional[str] = None) -> None:
        self.routes: Dict[str, Route] = dict(routes or {})
        self.received: List[Received] = []
        self._upstream = urlsplit(upstream) if upstream else None
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(self.command, self.path,
                               {k.lower(): v for k, v in self.headers.items()}, body,
                               time.monotonic())
                with outer._lock:
                    outer.received.append(got)
                answer = outer._answer(got)
                self.send_response(answer.status)
                headers = dict(answer.headers)
                headers.setdefault("Content-Length", str(len(answer.body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"recording-{host}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def paths(self) -> List[str]:
        with self._lock:
            return [r.path.split("?", 1)[0] for r in self.received]

    def requests(self) -> List[Received]:
        with self._lock:
            return list(self.received)

    def _answer(self, got: Received) -> Answer:
        route = self.routes.get(got.path.split("?", 1)[0])
        if route is not None:
            return route(got) if callable(route) else route
        if self._upstream is not None:
            return self._forward(got)
        return Answer(404, {"Content-Type": "text/plain"}, b"404: Not Found")

    def _forward(self, got: Received) -> Answer:
        assert self._upstream is not None
        conn = http.client.HTTPConnection(self._upstream.hostname or "", self._upstream.port,
                                          timeout=30)
        try:
            headers = {k: v for k, v in got.headers.items() if k not in ("host", "connection")}
            conn.request(got.method, got.path, body=got.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            kept = {k: v for k, v in response.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")}
            return Answer(response.status, kept, body)
        finally:
            conn.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> RecordingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def failing(times: int, status: int = 503, then: Optional[Answer] = None,
            headers: Optional[Mapping[str, str]] = None) -> Callable[[Received], Answer]:
    """A route answering ``status`` to its first ``times`` requests, then ``then``."""
    count = [0]
    lock = threading.Lock()

    def route(got: Received) -> Answer:
        with lock:
            count[0] += 1
            n = count[0]
        if n <= times:
            return Answer(status, {"Content-Type": "text/html", **(headers or {})},
                          b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
        return then if then is not None else json_answer("{}")

    return route


def pair(routes_a: Optional[Dict[str, Route]] = None,
         routes_b: Optional[Dict[str, Route]] = None) -> Tuple[RecordingServer, RecordingServer]:
    """A server on 127.0.0.1 and one on 127.0.0.2 (another origin)."""
    return RecordingServer("127.0.0.1", routes_a), RecordingServer(OTHER_HOST, routes_b)


def iter_secrets(received: List[Received]) -> Iterator[Received]:
    return (r for r in received if r.carries_secret())
