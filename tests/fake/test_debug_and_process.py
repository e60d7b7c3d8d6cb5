"""FakeComfyUI's test-only surface: the execution counter (in process and over HTTP) and
``python -m comfysync.testing`` as a server process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import requests

from comfysync import ComfyApi
from comfysync.testing import FakeComfyUI

ROOT = Path(__file__).resolve().parents[2]


def prompt(text: str) -> dict:
    return {"1": {"class_type": "ProbeText", "inputs": {"text": text}}}


def run_once(url: str, text: str, prompt_id: str) -> None:
    body = {"prompt": prompt(text), "prompt_id": prompt_id}
    assert requests.post(f"{url}/prompt", json=body, timeout=5).status_code == 200


def test_execution_counter_counts_each_run_of_a_prompt_id(fake_server: FakeComfyUI) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    run_once(fake_server.url, "a", first)
    fake_server.wait_until(lambda: first in fake_server.history())
    assert fake_server.executions() == {first: 1}
    run_once(fake_server.url, "a", first)  # the same id posted again runs again (as real)
    run_once(fake_server.url, "b", second)
    fake_server.wait_until(lambda: fake_server.executions(second)[second] == 1)
    fake_server.wait_for_idle()
    assert fake_server.executions() == {first: 2, second: 1}
    over_http = requests.get(f"{fake_server.url}/fake/executions", timeout=5).json()
    assert over_http == {first: 2, second: 1}
    one = requests.get(f"{fake_server.url}/fake/executions",
                       params={"prompt_id": "never"}, timeout=5).json()
    assert one == {"never": 0}
    # fake-only: no /api twin
    assert requests.get(f"{fake_server.url}/api/fake/executions", timeout=5).status_code == 404


def test_a_deleted_pending_prompt_is_not_counted(fake_server: FakeComfyUI) -> None:
    fake_server.pause()
    pid = str(uuid.uuid4())
    run_once(fake_server.url, "x", pid)
    requests.post(f"{fake_server.url}/queue", json={"delete": [pid]}, timeout=5)
    fake_server.resume()
    fake_server.wait_for_idle()
    assert fake_server.executions() == {}


def test_standalone_process_prints_its_url_and_stops_on_sigterm() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfysync.testing", "--port", "0", "--jobs-api"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        with ComfyApi(url) as api:
            result = api.run_workflow(prompt("hello"), timeout=20)
        pid = result.prompt_id
        assert result.text["1"] == ["hello"]
        job = requests.get(f"{url}/api/jobs/{pid}", timeout=5)  # --jobs-api took effect
        assert job.status_code == 200
        assert requests.get(f"{url}/fake/executions", timeout=5).json() == {pid: 1}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
