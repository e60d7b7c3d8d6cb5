"""``comfysync`` and the signals a process manager sends, the history's statuses and the
credential options: SIGTERM cancels like Ctrl-C (exit 143), ``history`` and ``history --json``
name an interrupted prompt alike, ``--user`` with ``--token`` is refused up front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import requests
from _cli import run_cli

from comfysync import ComfyApi, cli
from comfysync.errors import PromptInterruptedError
from comfysync.testing import FakeComfyUI

ROOT = Path(__file__).resolve().parents[2]


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _slow(seed: int) -> Dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ProbeSleep", "inputs": {"image": ["1", 0], "seconds": 30.0,
                                                     "seed": seed}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "slow"}},
    }


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child needs POSIX")
@pytest.mark.parametrize("as_json", [True, False])
def test_sigterm_cancels_the_running_prompt_and_exits_143(
    fake_server: FakeComfyUI, tmp_path: Path, as_json: bool
) -> None:
    wf = tmp_path / "slow.json"
    wf.write_text(json.dumps(_slow(int(time.time() * 1000) + as_json)), encoding="utf-8")
    argv = [sys.executable, "-m", "comfysync", "run", str(wf), "--server", fake_server.url]
    proc = subprocess.Popen(argv + (["--json"] if as_json else []), cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        prompt_id = fake_server.wait_for_running(timeout=30)  # the server's state, no sleep
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    if as_json:
        doc = json.loads(out)
        assert doc["status"] == "cancelled" and doc["prompt_id"] == prompt_id
        assert doc["error"]["type"] == "Terminated"
    fake_server.wait_for_idle(timeout=10)  # cancelled on the server: not running any more
    history = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()
    messages = [m[0] for m in history[prompt_id]["status"]["messages"]]
    assert "execution_interrupted" in messages


def test_sigterm_outside_a_run_also_exits_143(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Any command: SIGTERM ends it through the same cleanup as Ctrl-C, and the handler
    that was there before comes back afterwards."""
    before = signal.getsignal(signal.SIGTERM)

    def stats_then_killed(args: Any) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler at once
        return cli.EXIT_OK

    monkeypatch.setattr(cli, "_command", lambda name: stats_then_killed)
    code, _, err = run_cli(capsys, "stats")
    assert code == cli.EXIT_TERMINATED == 143
    assert err.strip() == "comfysync: terminated"
    assert signal.getsignal(signal.SIGTERM) == before


def test_history_and_history_json_agree_on_interrupted(
    fake_server: FakeComfyUI, capsys: pytest.CaptureFixture[str]
) -> None:
    with ComfyApi(fake_server.url) as api:
        job = api.submit(_slow(7))
        fake_server.wait_for_running(job.prompt_id, timeout=30)
        job.cancel()
        with pytest.raises(PromptInterruptedError):
            job.wait(timeout=30)
    code, out, _ = run_cli(capsys, "history", "--server", fake_server.url)
    assert code == 0
    (line,) = [x for x in out.splitlines() if x.startswith(job.prompt_id)]
    assert line.split()[1] == "interrupted"
    code, out, _ = run_cli(capsys, "history", "--json", "--server", fake_server.url)
    (item,) = [x for x in json.loads(out) if x["prompt_id"] == job.prompt_id]
    assert item["status"] == "interrupted"
    assert item["status_str"] == "error"  # what the server recorded, kept beside it


def test_user_with_token_says_use_one_of_them(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("COMFYUI_PASSWORD", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("asked for a password that would not be used")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    code, out, err = run_cli(capsys, "queue", "--server", "127.0.0.1:9", "--user", "ann",
                             "--token", "t0k")
    assert code == cli.EXIT_USAGE and out == ""
    assert "use one of them" in err and "--user" in err and "--token" in err
    assert "t0k" not in err
