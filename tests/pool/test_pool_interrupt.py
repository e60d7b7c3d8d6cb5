"""Ctrl-C (or SystemExit) during ``pool.run_workflow`` cancels the job's prompt on its server
and re-raises; ``future.result()`` of ``submit`` leaves the job alone."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator

import pytest

from comfysync import ComfyPool
from comfysync.testing import FakeComfyUI

WAIT = 20.0


def slow(seconds: float = 30.0, seed: int = 0) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": seed}},
        "2": {"class_type": "ProbeSleep",
              "inputs": {"image": ["1", 0], "seconds": seconds, "seed": seed}},
        "3": {"class_type": "ProbeText", "inputs": {"text": "slow", "image": ["2", 0]}},
    }


@pytest.fixture
def server() -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as running:
        yield running


def interrupt_when(condition: Any, action: Any) -> threading.Thread:
    """On a helper thread: wait for ``condition()`` (a server wait), then ``action()``."""

    def run() -> None:
        condition()
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def ctrl_c() -> None:
    """What the terminal does on Ctrl-C: SIGINT, here sent to the main thread itself so that
    its blocking wait is woken at once (the main thread raises KeyboardInterrupt)."""
    signal.pthread_kill(main_ident(), signal.SIGINT)


def main_ident() -> int:
    ident = threading.main_thread().ident
    assert ident is not None
    return ident


def history_status(server: FakeComfyUI, prompt_id: str) -> str:
    return str(server.history()[prompt_id]["status"]["status_str"])


def test_ctrl_c_interrupts_the_running_prompt_and_reraises(server: FakeComfyUI) -> None:
    with ComfyPool([server.url], timeout=5.0) as pool:
        helper = interrupt_when(lambda: server.wait_for_running(timeout=WAIT), ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            pool.run_workflow(slow(), timeout=WAIT)
        helper.join(WAIT)
        running = server.executions()
        assert len(running) == 1
        prompt_id = next(iter(running))
        server.wait_until(lambda: prompt_id in server.history(), timeout=WAIT)
        assert history_status(server, prompt_id) == "error"  # interrupted, not 30 s later
        messages = [m[0] for m in server.history()[prompt_id]["status"]["messages"]]
        assert "execution_interrupted" in messages
        # The pool is still usable.
        assert pool.run_workflow(slow(0.0, seed=1), timeout=WAIT).text["3"][0] == "slow"


def test_system_exit_removes_the_pending_prompt_and_reraises(server: FakeComfyUI) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, lambda *_: sys.exit(3))
    try:
        with ComfyPool([server.url], timeout=5.0) as pool:
            server.pause()
            helper = interrupt_when(
                lambda: server.wait_until(lambda: len(server.queue_state()[1]) == 1, WAIT),
                lambda: signal.pthread_kill(main_ident(), signal.SIGUSR1),
            )
            with pytest.raises(SystemExit):
                pool.run_workflow(slow(), timeout=WAIT)
            helper.join(WAIT)
            assert server.queue_state() == ([], [])  # dequeued before run_workflow re-raised
            server.resume()
            server.wait_for_idle(WAIT)
            assert server.executions() == {}
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_ctrl_c_while_waiting_for_a_server_withdraws_the_job(server: FakeComfyUI) -> None:
    with ComfyPool([server.url], timeout=5.0) as pool:
        server.pause()
        first = pool.submit(slow(0.0, seed=1))  # holds the only slot
        server.wait_until(lambda: len(server.queue_state()[1]) == 1, WAIT)
        engine = pool._engine

        def second_job_waits() -> None:
            with engine.lock:
                assert engine.wait_locked(lambda: len(engine.queue) == 1, time.monotonic() + WAIT)

        helper = interrupt_when(second_job_waits, ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            pool.run_workflow(slow(0.0, seed=2), timeout=WAIT)
        helper.join(WAIT)
        server.resume()
        first.result(WAIT)  # submit()'s job was left alone
        server.wait_for_idle(WAIT)
        assert len(server.executions()) == 1
