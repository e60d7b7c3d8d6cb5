"""The WebSocket handshake and redirects: credentials go only to the origin they were given for.

127.0.0.1 and 127.0.0.2 are different origins on the same machine. A raw HTTP server on one
answers the upgrade with a redirect to a recording server on the other; the recording server
must never see a connection (so no ``Authorization`` and no ``headers=`` value can reach it),
and the error names both origins. Redirects within the origin keep working.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Dict, Iterator, List

import pytest
import test_listener as base
from test_listener import WAIT, ScriptedServer

from comfysync import events as ev
from comfysync.errors import ComfyConnectionError

scripted = base.scripted  # the listener tests' fixtures (assigned, not imported, for the linter)
make_listener = base.make_listener

CREDENTIALS: Dict[str, Dict[str, Any]] = {
    "token": {"token": "s3cret-token"},
    "auth": {"auth": ("user", "s3cret-pw")},
    "headers": {"headers": {"X-API-Key": "s3cret-key", "X-Other": "s3cret-other"}},
}
SECRETS = ("s3cret", "dXNlcjpzM2NyZXQtcHc=")  # the Basic value of ("user", "s3cret-pw")


class RawHttpServer:
    """Answers every request on ``host`` with ``status`` and ``location`` (when given) and
    records the request headers (lower-cased names) of each connection it accepted."""

    def __init__(self, host: str, status: int = 404, location: str = "") -> None:
        self.status = status
        self.location = location
        self.requests: List[Dict[str, str]] = []
        self.connections = 0
        self._sock = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="raw-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(WAIT)
                request = b""
                try:
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                except OSError:
                    continue
                lines = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
                self.requests.append(
                    {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
                )
                head = f"HTTP/1.1 {self.status} Redirect\r\n"
                if self.location:
                    head += f"Location: {self.location}\r\n"
                head += "Content-Length: 0\r\nConnection: close\r\n\r\n"
                try:
                    conn.sendall(head.encode("latin-1"))
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


@pytest.fixture
def servers() -> Iterator[List[RawHttpServer]]:
    made: List[RawHttpServer] = []
    yield made
    for server in made:
        server.close()


def _refused(
    servers: List[RawHttpServer], make_listener: Any, here: str, there: str, status: int,
    credential: str,
) -> None:
    target = RawHttpServer(there, status=200)
    servers.append(target)
    redirector = RawHttpServer(here, status, f"ws://{there}:{target.port}/ws?clientId=x")
    servers.append(redirector)
    listener, bus, rec = make_listener(
        f"http://{here}:{redirector.port}", transport_kw=CREDENTIALS[credential]
    )
    with pytest.raises(ComfyConnectionError) as info:
        listener.start(timeout=WAIT)
    message = str(info.value)
    assert f"ws://{here}:{redirector.port}" in message
    assert f"ws://{there}:{target.port}" in message
    assert "another origin" in message and f"HTTP {status}" in message
    assert not any(secret in message for secret in SECRETS)
    assert target.connections == 0 and target.requests == []  # nothing reached the other origin
    assert len(redirector.requests) == 1  # the credentials went to their own origin only
    sent = " ".join(redirector.requests[0].values())
    assert any(secret in sent for secret in SECRETS)
    assert rec.events == [] and not listener.alive


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
def test_redirect_to_another_host_is_refused_without_sending_credentials(
    servers: List[RawHttpServer], make_listener: Any, status: int, credential: str
) -> None:
    _refused(servers, make_listener, "127.0.0.1", "127.0.0.2", status, credential)


@pytest.mark.parametrize("status", [302, 308])
def test_redirect_back_from_the_second_address_is_refused_too(
    servers: List[RawHttpServer], make_listener: Any, status: int
) -> None:
    _refused(servers, make_listener, "127.0.0.2", "127.0.0.1", status, "headers")


def test_redirect_to_another_port_or_scheme_is_another_origin(
    servers: List[RawHttpServer], make_listener: Any
) -> None:
    other_port = RawHttpServer("127.0.0.1", status=200)
    servers.append(other_port)
    redirector = RawHttpServer("127.0.0.1", 307, f"http://127.0.0.1:{other_port.port}/ws")
    servers.append(redirector)
    listener, _, _ = make_listener(
        f"http://127.0.0.1:{redirector.port}", transport_kw=CREDENTIALS["token"]
    )
    with pytest.raises(ComfyConnectionError, match=f"ws://127.0.0.1:{other_port.port}"):
        listener.start(timeout=WAIT)
    assert other_port.connections == 0
    redirector.location = f"wss://127.0.0.1:{redirector.port}/ws"  # same host and port, TLS
    with pytest.raises(ComfyConnectionError) as info:
        listener.start(timeout=WAIT)
    assert f"to another origin, wss://127.0.0.1:{redirector.port}" in str(info.value)


def test_same_origin_redirect_is_followed_with_the_credentials(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    """A relative Location on the same origin: followed, with the credentials (they belong
    there), and the socket works."""
    scripted.redirect = (307, "/moved/ws?clientId=0123456789abcdef")
    listener, bus, rec = make_listener(scripted.url, transport_kw=CREDENTIALS["token"])
    listener.start(timeout=WAIT)
    assert listener.connected
    assert [h.get("Authorization") for _, h, _ in scripted.handshakes] == [
        "Bearer s3cret-token"
    ] * 2
    scripted.send_json(base.status(4))
    rec.wait(lambda evs: any(isinstance(e, ev.Status) and e.queue_remaining == 4 for e in evs))


def test_same_origin_absolute_redirect_with_http_scheme_is_followed(
    scripted: ScriptedServer, make_listener: Any
) -> None:
    scripted.redirect = (301, f"http://127.0.0.1:{scripted.port}/moved/ws?clientId=abc")
    listener, bus, rec = make_listener(scripted.url)
    listener.start(timeout=WAIT)
    assert listener.connected and listener.sid == "abc"


def test_a_redirect_loop_on_the_same_origin_is_bounded(
    servers: List[RawHttpServer], make_listener: Any
) -> None:
    loop = RawHttpServer("127.0.0.1", 302, "/ws")
    servers.append(loop)
    listener, _, _ = make_listener(f"http://127.0.0.1:{loop.port}")
    with pytest.raises(ComfyConnectionError, match="redirected more than 3 times"):
        listener.start(timeout=WAIT)
    assert len(loop.requests) == 4  # the first handshake and three redirects


def test_a_redirect_without_location_is_an_error(
    servers: List[RawHttpServer], make_listener: Any
) -> None:
    server = RawHttpServer("127.0.0.1", 302)
    servers.append(server)
    listener, _, _ = make_listener(f"http://127.0.0.1:{server.port}")
    with pytest.raises(ComfyConnectionError, match="without a Location"):
        listener.start(timeout=WAIT)


def test_a_reconnect_redirected_elsewhere_is_a_failed_attempt(
    scripted: ScriptedServer, make_listener: Any, servers: List[RawHttpServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a drop, a server now redirecting to another origin costs attempts, never a
    credential: the reason is logged and ``ReconnectionFailed`` carries it."""
    target = RawHttpServer("127.0.0.2", status=200)
    servers.append(target)
    listener, bus, rec = make_listener(
        scripted.url, transport_kw=CREDENTIALS["headers"], backoff_base=0.01,
        backoff_cap=0.02, max_attempts=2,
    )
    listener.start(timeout=WAIT)
    scripted.redirect = (302, f"ws://127.0.0.2:{target.port}/ws")
    with caplog.at_level(logging.INFO, logger="comfysync.listener"):
        scripted.drop()
        failed = rec.wait_count(ev.ReconnectionFailed)[0]
    assert failed.attempts == 2
    assert f"ws://127.0.0.2:{target.port}" in (failed.last_error or "")
    assert target.connections == 0
    assert not any(secret in caplog.text for secret in SECRETS)
