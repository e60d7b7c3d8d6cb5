"""Real parts for the Celery tests, started here on 127.0.0.1 with ephemeral ports: a
``redis-server`` (broker and result backend), FakeComfyUI servers in their own processes,
and ``celery worker`` processes (prefork pool) running :mod:`celery_test_app`."""

from __future__ import annotations

import shutil
from typing import Callable, Iterator, List

import pytest
from _celery_procs import FakeServerProcess, Proc, child_env, free_port, python
from _components import require_executable, require_module

READY_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's package) on an ephemeral port; the URL of database 0."""
    server = require_executable("redis-server", "install Debian's package: apt-get install "
                                "redis-server")
    require_module("redis", 'pip install "comfysync[celery]"')
    workdir = tmp_path_factory.mktemp("redis")
    last_error = ""
    for _ in range(3):  # the port was free a moment ago; another process may take it
        port = free_port()
        proc = Proc(
            "redis-server",
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"],
            ready=r"Ready to accept connections",
        )
        try:
            proc.wait_ready(READY_TIMEOUT)
        except RuntimeError as exc:
            last_error = str(exc)
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.stop()
        return
    raise RuntimeError(f"redis-server did not start: {last_error}")


@pytest.fixture(scope="module")
def start_fake_server() -> Iterator[
        Callable[..., FakeServerProcess]]:
    """Start FakeComfyUI processes (stopped at the end of the module)."""
    require_module("aiohttp", 'pip install "comfysync[testing]"')
    started: List[FakeServerProcess] = []

    def start(port: int = 0) -> FakeServerProcess:
        proc = Proc("fake-comfyui", python("-m", "comfysync.testing", "--port", str(port)),
                    ready=r"^(http://127\.0\.0\.1:\d+)$")
        server = FakeServerProcess(proc, proc.wait_ready(READY_TIMEOUT).group(1))
        started.append(server)
        return server

    yield start
    for server in started:
        server.proc.stop()


@pytest.fixture(scope="module")
def start_worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[..., Proc]]:
    """Start ``celery worker`` processes on :mod:`celery_test_app` (stopped at the end of the
    module, warm shutdown first)."""
    require_module("celery", 'pip install "comfysync[celery]"')
    celery = shutil.which("celery")
    started: List[Proc] = []

    def start(name: str, servers: List[str], concurrency: int = 2, queue: str = "celery",
              max_retries: int = 3) -> Proc:
        env = child_env({"CELERY_TEST_BROKER": redis_url,
                         "COMFYSYNC_SERVERS": ",".join(servers),
                         "CELERY_TEST_MAX_RETRIES": str(max_retries)})
        argv = [celery] if celery else python("-m", "celery")
        proc = Proc(
            f"worker {name}",
            argv + ["-A", "celery_test_app", "worker", "--pool", "prefork",
                    "--concurrency", str(concurrency), "--hostname", f"{name}@comfysync-test",
                    "--queues", queue, "--without-gossip", "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel", "INFO"],
            env=env,
            cwd=tmp_path_factory.mktemp("worker"),
            ready=r"comfysync-test ready\.",
        )
        started.append(proc)
        proc.wait_ready(READY_TIMEOUT)
        return proc

    yield start
    for proc in started:
        proc.stop()
