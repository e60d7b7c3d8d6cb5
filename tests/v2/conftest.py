"""A real Comfy API v2 implementation for the v2 tests: comfy-api-proxy, started as its own
process on loopback in front of a FakeComfyUI (which serves the jobs cancel route the proxy
cancels through)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Iterator, Optional

import pytest
import requests

from comfysync.testing import FakeComfyUI
from tests._components import require_module

#: Seconds the proxy gets to exit on SIGTERM before it is killed.
_GRACE = 0.5


class Proxy:
    """A running ``comfy-api-proxy``: ``url`` is its base URL."""

    def __init__(self, upstream: str, token: Optional[str] = None) -> None:
        require_module("comfy_api_proxy", 'pip install "comfy-api-proxy" (Python 3.10+)')
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "comfy_api_proxy.cli", "run", "--comfyui", upstream,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        if token:
            command += ["--token", token]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=dict(os.environ))
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr is not None else ""
                raise RuntimeError(f"comfy-api-proxy exited: {err[-2000:]}")
            try:
                if requests.get(self.url + "/api/v2/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("comfy-api-proxy did not start within 20 s")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a short bound, and reap the process. The bound is short
        because the proxy's graceful exit waits for every event-stream handler, and one whose
        job ended before the handler's ComfyUI socket saw it sits in a 15 s heartbeat wait
        even after its client is gone (the client stopped the stream, having read the job):
        waiting that out would only slow the suite."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def upstream() -> Iterator[FakeComfyUI]:
    with FakeComfyUI(jobs_api=True) as server:
        yield server


@pytest.fixture
def proxy(upstream: FakeComfyUI) -> Iterator[Proxy]:
    running = Proxy(upstream.url)
    try:
        yield running
    finally:
        running.stop()
