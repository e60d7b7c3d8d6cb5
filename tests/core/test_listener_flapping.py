"""A flapping link: a real loopback forwarder between the listener and the server cuts every
connection on command. Each reconnect after a greeted connection must start from the base
delay; attempts that fail before a greeting keep backing off.

Every wait is on events (``Reconnected``, ``Reconnecting``), bounded by ``WAIT``.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Iterator, List, Tuple

import pytest
import test_listener as base
from test_listener import WAIT, CeilingRandom, ScriptedServer

from comfysync import events as ev

scripted = base.scripted  # the listener tests' fixtures (assigned, not imported, for the linter)
make_listener = base.make_listener


class Forwarder:
    """A TCP forwarder on 127.0.0.1 in front of ``upstream_port``. ``cut()`` ends every
    connection going through it, on both sides, without a close frame (as a dropped link
    does). While ``refusing`` is set, new connections are accepted and closed at once."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = False
        self.accepted = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: List[Tuple[socket.socket, socket.socket]] = []
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="forwarder", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                if self.refusing:
                    client.close()
                    continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=WAIT)
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                for src, dst in ((client, upstream), (upstream, client)):
                    thread = threading.Thread(target=self._pipe, args=(src, dst), daemon=True)
                    self._threads.append(thread)
                    thread.start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):  # one side ended: the link is gone both ways
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._server.close()
        self._acceptor.join(WAIT)
        self.cut()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in [self._acceptor, *threads])


@pytest.fixture
def forwarder(scripted: ScriptedServer) -> Iterator[Forwarder]:
    fwd = Forwarder(scripted.port)
    try:
        yield fwd
    finally:
        fwd.close()


def test_each_reconnect_after_a_greeted_connection_starts_fast(
    forwarder: Forwarder, make_listener: Any
) -> None:
    """Eight cuts in a row, each right after the greeting: every reconnect waits the base
    delay (here exactly, the jitter picking the top of its range) — with a backoff that kept
    growing across outages the eighth would wait 128 times as long."""
    listener, bus, rec = make_listener(
        f"http://127.0.0.1:{forwarder.port}",
        backoff_base=0.05,
        backoff_cap=30.0,
        max_attempts=None,
        rng=CeilingRandom(),
    )
    listener.start(timeout=WAIT)
    for n in range(1, 9):
        forwarder.cut()
        rec.wait_count(ev.Reconnected, n)
    assert [e.attempt for e in rec.of(ev.Reconnected)] == [1] * 8
    assert [e.delay for e in rec.of(ev.Reconnecting)] == pytest.approx([0.05] * 8)
    assert all("connection lost" in e.reason for e in rec.of(ev.Disconnected))
    assert forwarder.accepted == 9
    assert listener.connected


def test_refused_attempts_back_off_and_the_next_greeting_resets(
    forwarder: Forwarder, make_listener: Any
) -> None:
    """While the link refuses, each attempt fails before a greeting and the delay doubles;
    once a connection is greeted again, the next outage starts from the base delay."""
    b = 0.02
    listener, bus, rec = make_listener(
        f"http://127.0.0.1:{forwarder.port}",
        backoff_base=b,
        backoff_cap=30.0,
        max_attempts=None,
        rng=CeilingRandom(),
    )
    listener.start(timeout=WAIT)
    forwarder.refusing = True
    forwarder.cut()
    rec.wait_count(ev.Reconnecting, 4)
    forwarder.refusing = False
    first = rec.wait_count(ev.Reconnected)[0]
    assert first.attempt >= 4
    forwarder.cut()
    rec.wait_count(ev.Reconnected, 2)
    delays = [e.delay for e in rec.of(ev.Reconnecting)]
    assert delays[: first.attempt] == pytest.approx([b * 2**i for i in range(first.attempt)])
    assert delays[first.attempt :] == pytest.approx([b])  # started over after the greeting
    assert rec.of(ev.Reconnected)[1].attempt == 1
