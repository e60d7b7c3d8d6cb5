"""Proxy settings from the environment: honoured, and read once per origin.

``requests`` re-reads ``*_PROXY``/``NO_PROXY`` for every request; comfysync reads them once
per origin (a measurable share of a short request's client-side cost). A real loopback
server stands in for the HTTP proxy: it receives the absolute URL of each proxied request.
"""

from __future__ import annotations

import socket
from typing import Iterator

import pytest
from _origin_servers import RecordingServer, json_answer

from comfysync import ComfyApi
from comfysync.errors import ComfyConnectionError

QUEUE = json_answer('{"exec_info": {"queue_remaining": 2}}')


def _closed_port() -> int:
    """A loopback port nothing listens on: only the proxy can answer for it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingServer]:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY",
                 "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with RecordingServer("127.0.0.1") as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        monkeypatch.setenv("http_proxy", server.url)
        yield server


def test_environment_proxy_is_used(proxy: RecordingServer) -> None:
    target = f"http://127.0.0.2:{_closed_port()}"
    proxy.routes[f"{target}/prompt"] = QUEUE
    api = ComfyApi(target, tracker="http", retries=0)
    try:
        assert api.get_queue_remaining() == 2
    finally:
        api.close()
    assert [r.path for r in proxy.requests()] == [f"{target}/prompt"]


def test_environment_is_read_once_per_origin(
    proxy: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"http://127.0.0.2:{_closed_port()}"
    proxy.routes[f"{target}/prompt"] = QUEUE
    api = ComfyApi(target, tracker="http", retries=0)
    try:
        assert api.get_queue_remaining() == 2
        # Changed after the first request to this origin: the client keeps what it read.
        monkeypatch.setenv("NO_PROXY", "*")
        monkeypatch.setenv("no_proxy", "*")
        assert api.get_queue_remaining() == 2
    finally:
        api.close()
    assert len(proxy.requests()) == 2
    # A new client reads the environment afresh: NO_PROXY now sends it straight to the
    # (closed) port, so the proxy sees nothing more.
    fresh = ComfyApi(target, tracker="http", retries=0)
    try:
        with pytest.raises(ComfyConnectionError):
            fresh.get_queue_remaining()
    finally:
        fresh.close()
    assert len(proxy.requests()) == 2
