"""A loopback TCP forwarder in front of a server, for fault tests and benchmarks.

It pipes bytes both ways, connection by connection (HTTP and WebSocket alike), and can:

* ``lose_prompt_answers(n, reply=None)``: the next ``n`` ``POST /prompt`` requests reach the
  server, which handles them; the forwarder waits for the server's answer and then, instead
  of passing it on, closes the client's connection (``reply=None``) or sends ``reply`` (e.g. a
  proxy's 502) — the client cannot know whether its prompt was queued;
* ``cut()``: close every open connection at once (a flapping link).
"""

from __future__ import annotations

import socket
import threading
from typing import List, Optional

_PROMPT_REQUEST = b"POST /prompt "
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.lose_answer = False
        self.reply: Optional[bytes] = None

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


class Forwarder:
    """Listens on 127.0.0.1 (ephemeral port) and forwards to ``127.0.0.1:upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: List[_Pair] = []
        self._threads: List[threading.Thread] = []
        self._to_lose = 0
        self._reply: Optional[bytes] = None
        self.lost = 0  # answers swallowed so far
        self.answer_lost = threading.Event()
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, name="forwarder", daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lose_prompt_answers(self, count: int, reply: Optional[bytes] = None) -> None:
        with self._lock:
            self._to_lose = count
            self._reply = reply

    def cut(self) -> None:
        """Close every open connection (new ones are accepted as before)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self.cut()
        self._accepting.join(5)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream_port), 5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._closed:
                    pair.close()
                    return
                self._pairs.append(pair)
                for target in (self._client_to_server, self._server_to_client):
                    thread = threading.Thread(target=target, args=(pair,), daemon=True)
                    self._threads.append(thread)
                    thread.start()

    def _client_to_server(self, pair: _Pair) -> None:
        try:
            while True:
                data = pair.client.recv(65536)
                if not data:
                    break
                if data.startswith(_PROMPT_REQUEST):
                    with self._lock:
                        if self._to_lose > 0:
                            self._to_lose -= 1
                            pair.lose_answer = True
                            pair.reply = self._reply
                pair.upstream.sendall(data)
        except OSError:
            pass
        pair.close()

    def _server_to_client(self, pair: _Pair) -> None:
        try:
            while True:
                data = pair.upstream.recv(65536)
                if not data:
                    break
                if pair.lose_answer:  # the server answered: it has handled the POST
                    if pair.reply is not None:
                        pair.client.sendall(pair.reply)
                    with self._lock:
                        self.lost += 1
                    self.answer_lost.set()
                    break
                pair.client.sendall(data)
        except OSError:
            pass
        pair.close()
