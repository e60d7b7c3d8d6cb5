"""The ``comfysync`` program as a shell sees it: ``python -m comfysync`` in a subprocess.

A handful of tests only (interpreter start-up is slow): the console entry, a real run, the
exit code and single stderr line for an unreachable server, and Ctrl-C cancelling a running
prompt on the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "workflows"
TIMEOUT = 60


def env() -> Dict[str, str]:
    """The current environment, the repo root importable, no COMFYUI_* leaking in."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_")}
    result["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([result["PYTHONPATH"]] if result.get("PYTHONPATH") else []))
    return result


def comfysync(*argv: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "comfysync", *argv], cwd=cwd,
                          env={**env(), **extra_env}, capture_output=True, text=True,
                          timeout=TIMEOUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_version(tmp_path: Path) -> None:
    from comfysync import __version__

    proc = comfysync("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"comfysync {__version__}"


def test_run_json_in_a_subprocess(fake_server: Any, tmp_path: Path) -> None:
    proc = comfysync("run", str(SAMPLES / "img2img_invert.json"), "--server", fake_server.url,
                     "--set", "1.image=nope.png", cwd=tmp_path)
    assert proc.returncode == 1  # LoadImage of a missing file: rejected by validation
    assert proc.stderr.startswith("comfysync: error: the server rejected the workflow")
    assert proc.stderr.count("\n") == 1

    proc = comfysync("run", str(SAMPLES / "invert_ui.json"), "--json", cwd=tmp_path,
                     COMFYUI_URL=fake_server.url)  # the server from the environment
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "success"
    assert (tmp_path / doc["files"][0]["path"]).is_file()


def test_unreachable_server_exits_3_with_one_line(tmp_path: Path) -> None:
    proc = comfysync("queue", "--server", f"127.0.0.1:{free_port()}", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("comfysync: error: cannot connect to the server")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    proc = comfysync("run", cwd=tmp_path)
    assert proc.returncode == 2 and "comfysync: error:" in proc.stderr


def test_credentials_never_printed(tmp_path: Path) -> None:
    proc = comfysync("--debug", "stats", "--server", f"http://127.0.0.1:{free_port()}",
                     "--user", "ann", cwd=tmp_path, COMFYUI_PASSWORD="s3cret-pw")
    assert proc.returncode == 3
    assert "s3cret-pw" not in proc.stderr + proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child needs POSIX")
def test_ctrl_c_cancels_the_running_prompt(fake_server: Any, tmp_path: Path) -> None:
    slow = json.loads((SAMPLES / "slow.json").read_text(encoding="utf-8"))
    slow["2"]["inputs"]["seed"] = int(time.time())  # never cached
    wf = tmp_path / "slow.json"
    wf.write_text(json.dumps(slow), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfysync", "run", str(wf), "--server", fake_server.url,
         "--json"], cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        prompt_id = fake_server.wait_for_running(timeout=30)  # the server's state, no sleep
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    doc = json.loads(out)
    assert doc["status"] == "cancelled" and doc["prompt_id"] == prompt_id
    fake_server.wait_for_idle(timeout=10)  # interrupted: not running any more
    history = requests.get(f"{fake_server.url}/history/{prompt_id}", timeout=5).json()
    messages = [m[0] for m in history[prompt_id]["status"]["messages"]]
    assert "execution_interrupted" in messages


def test_demo_in_a_subprocess(tmp_path: Path) -> None:
    proc = comfysync("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = [line.split(" ", 1)[1] for line in proc.stdout.splitlines()
             if line.startswith("saved ")]
    assert len(saved) == 1 and (tmp_path / saved[0]).is_file()
    assert "previews" in proc.stdout and "The image is in" in proc.stdout
