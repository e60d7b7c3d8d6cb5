"""Child processes for the Celery tests: started, waited for on their own output, stopped.

A reader thread collects each process's output and sets an event when a line matches the
"ready" pattern, so a test waits for readiness (bounded) instead of sleeping; the output is
kept for the failure message.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a child: this checkout (and tests/celery) first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "COMFYSYNC_"))}
    paths = [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Proc:
    """One child process with its output collected by a thread."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        ready: str,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[Path] = None,
    ) -> None:
        self.name = name
        self.lines: List[str] = []
        self._ready_re = re.compile(ready)
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.match: Optional[re.Match[str]] = None
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env if env is not None else child_env(),
            cwd=str(cwd) if cwd is not None else None,
            text=True,
            start_new_session=True,  # a stray signal to the test's group never reaches it
        )
        self._reader = threading.Thread(target=self._read, name=f"out-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            if not self._ready.is_set():
                match = self._ready_re.search(line)
                if match:
                    self.match = match
                    self._ready.set()
        self._ready.set()  # ended: wake the waiter, which sees the exit

    def wait_ready(self, timeout: float) -> re.Match[str]:
        if not self._ready.wait(timeout) or self.match is None:
            self.stop()
            raise RuntimeError(f"{self.name} did not become ready in {timeout} s:\n{self.output()}")
        return self.match

    def output(self, last: int = 60) -> str:
        with self._lock:
            return "\n".join(self.lines[-last:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; the reader thread is joined."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        self._reader.join(5)


def python(*args: str) -> List[str]:
    return [sys.executable, *args]


class FakeServerProcess:
    """A FakeComfyUI in its own process (``python -m comfysync.testing``)."""

    def __init__(self, proc: Proc, url: str) -> None:
        self.proc = proc
        self.url = url

    def requests(self, prompt_id: Optional[str] = None) -> List[Dict[str, Any]]:
        """The requests the server saw (``GET /fake/requests``), those naming ``prompt_id``
        only when given: ``[{"method", "path", "query"}]``."""
        params = {"prompt_id": prompt_id} if prompt_id is not None else None
        answer = requests.get(f"{self.url}/fake/requests", params=params, timeout=10)
        answer.raise_for_status()
        return list(answer.json())

    def executions(self, prompt_id: Optional[str] = None) -> Dict[str, int]:
        """prompt id → how many times the server started executing it (``GET
        /fake/executions``): where "exactly once" is checked."""
        params = {"prompt_id": prompt_id} if prompt_id is not None else None
        answer = requests.get(f"{self.url}/fake/executions", params=params, timeout=10)
        answer.raise_for_status()
        return {str(k): int(v) for k, v in answer.json().items()}
