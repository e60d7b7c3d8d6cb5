"""Ctrl-C that cancels, ``cancel_all``, and ``job.events()``: against FakeComfyUI (in process,
or the README's thread-pool example in a subprocess sent one SIGINT)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, List

import pytest
from _core_workflows import sleep_wf, text_wf

from comfysync import ComfyApi
from comfysync import events as ev
from comfysync.errors import PromptInterruptedError, PromptTimeoutError
from comfysync.testing import FakeComfyUI

WAIT = 30.0
REPO = Path(__file__).resolve().parents[2]


def interrupted_on_server(server: FakeComfyUI, prompt_id: str) -> bool:
    entry = server.history().get(prompt_id)
    if entry is None:
        return False
    return any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_run_workflow_cancels_its_prompt_when_the_wait_is_interrupted(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi], interrupt: type,
) -> None:
    api = make_api()
    started: List[str] = []

    def on_start(event: ev.Event) -> None:
        if isinstance(event, ev.Progress) and not started:
            started.append(str(event.prompt_id))
            if interrupt is KeyboardInterrupt:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, to the waiting main thread
            else:
                raise_in_main.set()

    raise_in_main = threading.Event()
    if interrupt is SystemExit:  # a signal handler that exits, as `sys.exit` on SIGTERM
        previous = signal.signal(signal.SIGUSR1, lambda *a: sys.exit(3))
        threading.Thread(target=lambda: raise_in_main.wait(WAIT)
                         and os.kill(os.getpid(), signal.SIGUSR1), daemon=True).start()
    try:
        with pytest.raises(interrupt):
            api.run_workflow(text_wf("stop", steps=50, delay_ms=200, seed=301),
                             on_progress=on_start, timeout=WAIT)
    finally:
        if interrupt is SystemExit:
            signal.signal(signal.SIGUSR1, previous)
    (prompt_id,) = started
    fake_server.wait_until(lambda: interrupted_on_server(fake_server, prompt_id), WAIT)


def test_job_wait_leaves_the_prompt_alone(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api()
    job = api.submit(sleep_wf(0.5, seed=302))
    with pytest.raises(PromptTimeoutError):
        job.wait(0.01)
    assert job.wait(WAIT).text["3"][0] == "slept"  # the wait ended, the prompt did not


def test_cancel_all_cancels_every_unfinished_prompt(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api()
    done = api.submit(text_wf("quick", seed=303))
    done.wait(WAIT)
    jobs = [api.submit(sleep_wf(30, seed=310 + i)) for i in range(3)]
    fake_server.wait_for_running(timeout=WAIT)
    assert api.cancel_all() == 3
    for job in jobs:
        with pytest.raises(PromptInterruptedError) as info:
            job.wait(WAIT)
        assert info.value.cancelled
    assert api.cancel_all() == 0
    fake_server.wait_for_idle(timeout=WAIT)


def test_events_iterates_the_jobs_events_and_ends_after_the_last(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api()
    job = api.submit(text_wf("loop", steps=3, delay_ms=50, seed=320))
    seen = list(job.events(timeout=WAIT))
    assert job.done() and job.wait(0).text["3"][0] == "loop"
    assert all(e.prompt_id == job.prompt_id for e in seen)
    progress = [e.value for e in seen if isinstance(e, ev.Progress)]
    assert progress == sorted(progress) and progress[-1] == 3  # in order, up to the end
    assert isinstance(seen[-1], ev.Executing) and seen[-1].node is None
    assert list(job.events()) == []  # an ended job has no more events


def test_events_is_bounded_by_its_timeout(
    fake_server: FakeComfyUI, make_api: Callable[..., ComfyApi]
) -> None:
    api = make_api()
    job = api.submit(sleep_wf(30, seed=321))
    with pytest.raises(PromptTimeoutError) as info:
        for _ in job.events(timeout=0.3):
            pass
    assert info.value.job is job
    job.cancel()


def readme_thread_pool_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Many threads.**"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_readme_thread_pool_example_stops_on_one_ctrl_c(
    fake_server: FakeComfyUI, tmp_path: Path
) -> None:
    script = tmp_path / "pool_example.py"
    script.write_text(textwrap.dedent('''\
        import sys
        from comfysync import ComfyApi, Workflow

        url = sys.argv[1]
        wf = Workflow({
            "1": {"class_type": "EmptyImage",
                  "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "3": {"class_type": "ProbeSleep",
                  "inputs": {"image": ["1", 0], "seconds": 60, "seed": 0}},
            "4": {"class_type": "ProbeText", "inputs": {"text": "x", "image": ["3", 0]}},
        })
        ''') + readme_thread_pool_example(), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), fake_server.url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fake_server.wait_for_running(timeout=WAIT)
        fake_server.wait_until(lambda: len(fake_server.queue_state()[1]) >= 7, WAIT)
        proc.send_signal(signal.SIGINT)  # one Ctrl-C
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err, err
    fake_server.wait_for_idle(timeout=WAIT)  # the running prompt was interrupted...
    running, pending = fake_server.queue_state()
    assert running == [] and pending == []  # ...and the waiting ones removed
    assert sum(fake_server.executions().values()) == 1
